"""The chat example in two headless Chromium browsers, two service instances, one gateway.

Skipped nowhere: Chromium comes from Debian (/usr/bin/chromium) and Playwright
drives it (see reference/browser-tests.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "examples" / "chat"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chat_config(nats_url: str) -> str:
    text = (CHAT / "gateway.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    text = text.replace('nats_url = "nats://127.0.0.1:4222"', f'nats_url = "{nats_url}"')
    return text.replace('static = "static"', f'static = "{CHAT / "static"}"')


@pytest.fixture
def two_instances(nats_server: Any) -> Iterator[None]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, str(CHAT / "service.py"), "--nats",
                               nats_server.url, "--interval", "0.5"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.stderr is not None
        assert "started" in proc.stderr.readline().decode()
    yield
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def join(page: Page, url: str, name: str) -> str:
    page.goto(url)
    page.fill("input[name=name]", name)
    page.fill("input[name=room]", "lobby")
    page.click("#join button")
    status = page.locator("#status")
    expect(status).to_contain_text("in room lobby", timeout=10_000)
    return status.inner_text().rsplit("instance ", 1)[1].rstrip(")")


def say(page: Page, text: str) -> None:
    page.fill("input[name=text]", text)
    page.click("#say button")


def test_two_browsers_chat_through_two_instances(nats_server: Any, pointsman: Any,
                                                 write_config: Any, two_instances: None) -> None:
    gateway = pointsman("serve", "-c", str(write_config(chat_config(nats_server.url))))
    time.sleep(0.3)
    host, port = gateway.address("chat")
    url = f"http://{host}:{port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ada = browser.new_context().new_page()
            bob = browser.new_context().new_page()
            first = join(ada, url, "ada")
            second = join(bob, url, "bob")
            assert first != second  # one socket per instance: least connections
            expect(ada.locator("#log")).to_contain_text("bob joined")
            say(ada, "hello from ada")
            say(bob, "hi ada")
            for page in (ada, bob):
                log = page.locator("#log")
                expect(log).to_contain_text("ada: hello from ada")
                expect(log).to_contain_text("bob: hi ada")
            bob.close()
            expect(ada.locator("#log")).to_contain_text("bob left")
        finally:
            browser.close()
