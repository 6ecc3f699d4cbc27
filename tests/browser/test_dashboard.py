"""The dashboard in real headless Chromium: token prompt, tables and a live chart."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import Pointsman, ThreadedServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from registry_support import TOKEN, admin_url
from test_process import LoadLoop, config_text

CHROMIUM = os.environ.get("POINTSMAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

CONFIG_EXTRA = f"""
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[routes]]
uris = ["shop.example.com", "shop.example.com/api"]
endpoints = ["127.0.0.1:7001", "127.0.0.1:7002"]
app = "shop"
"""


def test_dashboard_asks_for_the_token_then_renders_routes_and_a_live_chart(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    backend = echo_server()
    text = config_text(backend).replace(
        "[process]", f'[process]\nstate_file = "{tmp_path / "state.json"}"') + CONFIG_EXTRA
    handle = pointsman("serve", "-c", str(write_config(text)))
    base = admin_url(handle)
    with LoadLoop(handle.address("front"), clients=2, max_requests=20_000) as load, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(base + "/")
            expect(page.locator("#login")).to_be_visible()
            page.fill("#token", "wrong")
            page.click("#login button")
            expect(page.locator("#login-error")).to_contain_text("refused")
            expect(page.locator("#app")).to_be_hidden()
            page.fill("#token", TOKEN)
            page.click("#login button")
            expect(page.locator("#app")).to_be_visible()
            expect(page.locator("#routes tbody")).to_contain_text("shop.example.com/api")
            expect(page.locator("#routes tbody")).to_contain_text("127.0.0.1:7002")
            expect(page.locator("#routes tbody")).to_contain_text("serving")
            expect(page.locator("#listeners tbody")).to_contain_text("front")
            expect(page.locator("#upstreams tbody")).to_contain_text(backend.address)
            expect(page.locator("#upstreams tbody")).to_contain_text("healthy")
            page.wait_for_function(
                "() => Number(document.getElementById('rps').textContent) > 10", timeout=10_000)
            page.wait_for_function("() => history.filter(p => p.rps > 0).length >= 5",
                                   timeout=10_000)
            drawn = page.evaluate("""() => {
                const c = document.getElementById('chart');
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let blue = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i + 2] > 150 && data[i] < 80) blue++;
                }
                return blue;
            }""")
            assert drawn > 100  # the requests/s line is on the canvas
            # POINTSMAN_SCREENSHOT=docs/dashboard.png refreshes the committed picture.
            target = os.environ.get("POINTSMAN_SCREENSHOT") or str(tmp_path / "dashboard.png")
            page.screenshot(path=target, full_page=True)
            assert Path(target).stat().st_size > 10_000
        finally:
            browser.close()
    assert load.errors == []

