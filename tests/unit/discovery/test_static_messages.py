"""File routes as registrations: a ``tls = true`` route registers a TLS endpoint."""

from __future__ import annotations

from pointsman.config import loads
from pointsman.discovery.registry import endpoint_of
from pointsman.discovery.static import static_messages


def test_tls_file_routes_register_tls_ports_with_their_server_name() -> None:
    config = loads("""
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"

[[listeners.routes]]
host = "secure.example.com"
endpoints = ["10.0.0.5:8443"]
tls = true
server_name = "app.internal"

[[listeners.routes]]
host = "plain.example.com"
endpoints = ["10.0.0.6:8080"]

[[routes]]
uris = ["top.example.com"]
endpoints = ["10.0.0.7:8443"]
tls = true
server_name = "top.internal"
""")
    endpoints = {m.uris[0]: endpoint_of(m) for m in static_messages(config)}
    secure = endpoints["secure.example.com"]
    assert (secure.tls, secure.port, secure.server_cert_domain_san) == \
        (True, 8443, "app.internal")
    assert secure.instance_id == "10.0.0.5:8443" and secure.app == "secure.example.com"
    assert not endpoints["plain.example.com"].tls
    top = endpoints["top.example.com"]
    assert (top.tls, top.server_cert_domain_san) == (True, "top.internal")
