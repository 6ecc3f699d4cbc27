"""HTTP listener counters appear as Prometheus families when scraped."""

from __future__ import annotations

from prometheus_client import generate_latest

from pointsman.serve.http_metrics import HttpStats, register


def test_stats_are_exposed_and_replaced_on_reload() -> None:
    stats = HttpStats("metrics-test")
    register(stats)
    stats.request("app.example.com", 200, 0.003)
    stats.request("app.example.com", 200, 0.2)
    stats.request("", 404, 0.0001)
    stats.upstream_error("connect_failed")
    stats.active = 3
    text = generate_latest().decode()
    assert ('pointsman_http_requests_total{listener="metrics-test",route="app.example.com",'
            'status="200"} 2.0') in text
    assert ('pointsman_http_upstream_errors_total{kind="connect_failed",'
            'listener="metrics-test"} 1.0') in text
    assert 'pointsman_http_request_duration_seconds_count{listener="metrics-test"} 3.0' in text
    assert 'pointsman_http_active_connections{listener="metrics-test"} 3.0' in text
    register(HttpStats("metrics-test"))
    text = generate_latest().decode()
    assert 'route="app.example.com"' not in text
