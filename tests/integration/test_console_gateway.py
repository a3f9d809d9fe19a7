"""The console's gateway page in a real browser: a real `kretry gateway` (in this process) on the real broker, a
real failing HTTP receiver, `kretry console --gateway-prefix` as a user runs it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from playwright.sync_api import Browser

from tests.conftest import Broker
from tests.integration.gateways import config, serving
from tests.integration.kit import unique, wait_until
from tests.integration.receiver import Receiver, Reply
from tests.integration.test_console_browser import console_process
from tests.integration.test_http import free_port
from tests.integration.test_process import app_env


def test_the_gateway_page_shows_configurations_pending_events_and_failures(
    gateway_prefix: str,
    kafka: Broker,
    browser: Browser,
    tmp_path: Path,
) -> None:
    with Receiver(default=Reply(503)) as down, serving(kafka.bootstrap, gateway_prefix) as (_, url):
        shop = "<b>shop</b>"
        secret = {
            "identifier": shop,
            "maxRetry": 1,
            "retryDelays": ["1h"],
            "integrations": [
                {"type": "HTTP", "config": {"url": "http://127.0.0.1:9/hook", "username": "u", "password": "s3cret"}}
            ],
        }
        assert httpx.post(f"{url}/v1/config", json=secret).status_code == 200
        flaky = unique("flaky")
        assert httpx.post(f"{url}/v1/config", json=config(flaky, [down.url("/x")], ["100ms", "1h"])).status_code == 200
        for body in ({"n": 1}, {"n": 2}):
            assert httpx.post(f"{url}/v1/event", json={"identifier": shop, "eventBody": body}).status_code == 200
        assert httpx.post(f"{url}/v1/event", json={"identifier": flaky, "eventBody": {"n": 3}}).status_code == 200
        down.wait_for(1)

        env = app_env(kafka.bootstrap, [unique("unused")], tmp_path / "ledger")
        env["APP_DLQ"] = f"{gateway_prefix}.dlq"
        port = free_port()
        console = console_process(env, port, tmp_path / "console.log", "--gateway-prefix", gateway_prefix)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/gateway")

            def shows_the_failure() -> bool:
                page.reload()
                return "HTTP 503" in page.inner_text("body")

            wait_until(shows_the_failure, timeout=30, what="the failure on the gateway page")
            configs = page.inner_text("#gateway-configs")
            assert shop in configs  # the identifier as text: escaped, not markup
            assert page.locator("#gateway-configs b").count() == 0
            assert "password=***" in configs
            assert "s3cret" not in page.content()
            pending = {
                row.locator("td.identifier").inner_text(): row.locator("td.events").inner_text()
                for row in page.locator("#gateway-pending tbody tr").all()
            }
            assert pending == {shop: "2", flaky: "1"}
            failures = page.inner_text("#gateway-failures")
            assert flaky in failures
        finally:
            console.send_signal(signal.SIGTERM)
            assert console.wait(30) == 0
