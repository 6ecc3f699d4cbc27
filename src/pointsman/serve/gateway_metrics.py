"""Prometheus series of the message gateway (default registry).

* ``pointsman_gateway_sockets{gateway}``: client WebSockets open now;
* ``pointsman_gateway_messages_total{gateway,service}``: client messages routed;
* ``pointsman_gateway_delivery_failures_total{gateway,service,reason}``: deliveries
  that failed (``no_responders``, ``timeout``, ``heartbeat``, ``rejected``);
* ``pointsman_gateway_instances{gateway,service}``: live instances known.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["DELIVERY_FAILURES", "INSTANCES", "MESSAGES", "SOCKETS"]

SOCKETS = Gauge("pointsman_gateway_sockets", "Client WebSockets open on a gateway", ["gateway"])
MESSAGES = Counter("pointsman_gateway_messages", "Client messages routed to a service",
                   ["gateway", "service"])
DELIVERY_FAILURES = Counter("pointsman_gateway_delivery_failures",
                            "Deliveries to a service instance that failed",
                            ["gateway", "service", "reason"])
INSTANCES = Gauge("pointsman_gateway_instances", "Live instances of a service known to a gateway",
                  ["gateway", "service"])
