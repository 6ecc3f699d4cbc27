"""The decisions of the route service leg: the service URL, hairpinning, the returning signature."""

from __future__ import annotations

import pytest

from pointsman.config import HttpRouteServices
from pointsman.routing.table import Endpoint, RoutePool, RouteTable
from pointsman.serve.route_service import RouteServices, ServiceTarget
from pointsman.wire.route_service import InvalidSignature, SignatureExpired, SigningKey, encode

NOW = 1_700_000_000 * 10**9
NONCE = bytes(12)
APP = RoutePool("app.example.com/shop", (Endpoint("10.0.0.1", 8080),),
                route_service_url="https://auth.example.com/check")
SERVICE = RoutePool("auth.example.com", (Endpoint("10.0.0.2", 8080),))
TABLE = RouteTable.build([APP, SERVICE, RoutePool("other.example.com", APP.endpoints)])


def services(**settings: object) -> RouteServices:
    found = RouteServices.of(HttpRouteServices(secret="s", **settings))  # type: ignore[arg-type]
    assert found is not None
    return found


def test_off_without_a_secret() -> None:
    assert RouteServices.of(HttpRouteServices()) is None


@pytest.mark.parametrize(("url", "expected"), [
    ("https://auth.example.com/check?x=1",
     ("auth.example.com", 443, True, b"auth.example.com", b"/check?x=1", "auth.example.com/check")),
    ("https://user:pw@Auth.example.com:8443",
     ("auth.example.com", 8443, True, b"Auth.example.com:8443", b"/", "auth.example.com")),
    ("http://[::1]:81/a/",
     ("::1", 81, False, b"[::1]:81", b"/a/", "[::1]/a")),
])
def test_a_service_url_is_parsed_once_into_where_and_what(url: str,
                                                           expected: tuple[object, ...]) -> None:
    target = ServiceTarget.parse(url)
    assert (target.host, target.port, target.tls, target.host_header, target.target,
            target.route_key) == expected


@pytest.mark.parametrize("url", ["ftp://a.example.com/", "https:///nohost", "not a url"])
def test_a_service_url_without_http_or_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        ServiceTarget.parse(url)


def test_the_service_leg_has_one_candidate_per_attempt_under_the_apps_route() -> None:
    target = ServiceTarget.parse("https://auth.example.com:8443/check")
    route = services(max_attempts=3).route_of(target, APP.key)
    assert len(set(route.states)) == 3
    assert {e.address for e in route.endpoint_of.values()} == {"auth.example.com:8443"}
    assert all(e.tls for e in route.endpoint_of.values())
    assert route.cookie_path == b"/shop"


def test_hairpinning_takes_this_routers_own_route_for_the_service() -> None:
    target = ServiceTarget.parse("https://auth.example.com/check")
    assert services().hairpin(target, TABLE) is SERVICE
    assert services(hairpinning=False).hairpin(target, TABLE) is None
    assert services(hairpinning_allowlist=["*.example.com"]).hairpin(target, TABLE) is SERVICE
    assert services(hairpinning_allowlist=["auth.example.com"]).hairpin(target, TABLE) is SERVICE
    assert services(hairpinning_allowlist=["*.other.org"]).hairpin(target, TABLE) is None
    unknown = ServiceTarget.parse("https://elsewhere.example.net/")
    assert services().hairpin(unknown, TABLE) is None
    # A service URL that is itself a route-service route is not taken internally.
    assert services().hairpin(ServiceTarget.parse("https://app.example.com/shop"), TABLE) is None


def test_a_returning_signature_must_name_a_url_of_the_same_route() -> None:
    rs = services(timeout=5)
    key = SigningKey("s")
    ok = encode(key, "https://app.example.com/shop/cart?x=1", NOW, NONCE)
    rs.validate(*ok, APP, TABLE, NOW + 10**9)
    with pytest.raises(SignatureExpired):
        rs.validate(*ok, APP, TABLE, NOW + 6 * 10**9)
    for url in ("https://other.example.com/shop", "https://app.example.com/", "/shop", ""):
        signature, metadata = encode(key, url, NOW, NONCE)
        with pytest.raises(InvalidSignature):
            rs.validate(signature, metadata, APP, TABLE, NOW)
    signature, metadata = encode(SigningKey("other"), "https://app.example.com/shop", NOW, NONCE)
    with pytest.raises(InvalidSignature):
        rs.validate(signature, metadata, APP, TABLE, NOW)


def test_the_decrypt_only_secret_validates_but_never_signs() -> None:
    rs = RouteServices(HttpRouteServices(secret="new", secret_decrypt_only="old"))
    old = encode(SigningKey("old"), "https://app.example.com/shop", NOW, NONCE)
    rs.validate(*old, APP, TABLE, NOW)
    signature, metadata = rs.sign(b"https://app.example.com/shop", NOW)
    with pytest.raises(InvalidSignature):
        RouteServices(HttpRouteServices(secret="old")).validate(
            signature, metadata, APP, TABLE, NOW)
