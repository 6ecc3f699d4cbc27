"""What a route state works out once per endpoint: the pool key and the X-CF-* fields."""

from __future__ import annotations

from pointsman.routing.table import Endpoint, RoutePool
from pointsman.serve.http_choice import Chooser, pool_key, tls_name
from pointsman.upstream.pool import EndpointStates


def test_tls_endpoints_never_share_a_pool_key_with_plain_ones() -> None:
    plain = Endpoint("10.0.0.1", 8443)
    tls = Endpoint("10.0.0.1", 8443, tls=True)
    named = Endpoint("10.0.0.1", 8443, tls=True, server_cert_domain_san="app.internal")
    assert pool_key(plain) == "10.0.0.1:8443"
    assert len({pool_key(plain), pool_key(tls), pool_key(named)}) == 3
    assert tls_name(tls) == "10.0.0.1" and tls_name(named) == "app.internal"


def test_route_state_precomputes_targets() -> None:
    registered = Endpoint("10.0.0.1", 80, app="guid", instance_index="1")
    bare = Endpoint("10.0.0.2", 80)
    secure = Endpoint("10.0.0.3", 443, tls=True, app="guid", instance_id="i-3",
                      server_cert_domain_san="app.internal")
    route = Chooser(EndpointStates()).route(RoutePool("a.example.com",
                                                      (registered, bare, secure)))
    targets = [route.target_of[state] for state in route.states]
    assert targets == [
        ("10.0.0.1:80", b"X-CF-ApplicationID: guid\r\nX-CF-InstanceIndex: 1\r\n"
                        b"X-CF-InstanceID: 10.0.0.1:80\r\n"),
        ("10.0.0.2:80", b""),
        ("10.0.0.3:443 tls app.internal",
         b"X-CF-ApplicationID: guid\r\nX-CF-InstanceID: i-3\r\n"),
    ]
