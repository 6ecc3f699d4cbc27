"""KV keys of admin routes: valid bucket keys, one per (uri, endpoint)."""

from __future__ import annotations

import base64

from nats.js.kv import _is_key_valid

from pointsman.control.admin_kv import KEY_PREFIX, kv_key


def test_keys_are_valid_and_distinct_for_any_uri_and_endpoint() -> None:
    pairs = [("*.example.com/api/v1", "[::1]:8080"), ("App.Example.com", "10.0.0.1:80"),
             ("app.example.com", "10.0.0.1:80"), ("a.com/x?y=1", "h:1"), ("a", "b:2")]
    keys = [kv_key(uri, endpoint) for uri, endpoint in pairs]
    assert all(_is_key_valid(key) for key in keys)
    assert len(set(keys)) == len(keys)
    raw = keys[0].removeprefix(KEY_PREFIX)
    decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    assert decoded == "*.example.com/api/v1 [::1]:8080"
