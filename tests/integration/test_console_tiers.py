"""The console's tiers page in a real browser: what waits in a retry tier, and "retry now" and "kill" obeyed by a
running `kretry run` (the same control messages as `kretry tier flush | kill`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser

from tests.integration.kit import end_offsets, produce, read_to_end, wait_until
from tests.integration.test_console_browser import console_process, worker
from tests.integration.test_http import free_port
from tests.integration.test_process import app_env, ledger
from tests.integration.workers import stop

NewTopic = Callable[..., str]
WITHIN = 60.0  # well under the tier's hour: what "within seconds" may mean on a busy machine


def test_retry_now_and_kill_from_the_tiers_page(
    browser: Browser, bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("tiers")
    tier = f"{topic}_retry_1"
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book, delays="1h")
    running = worker(env, tmp_path / "worker.log")
    port = free_port()
    console = console_process(env, port, tmp_path / "console.log")
    try:
        keys = ["a", "b", "a", "b"]
        produce(bootstrap, topic, [(k.encode(), f"fail-1-{i}-{k}".encode(), None) for i, k in enumerate(keys)])
        wait_until(lambda: end_offsets(bootstrap, tier) == [4], timeout=60, what="four waiting an hour in the tier")

        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        due = page.locator(f'tr[data-stage="{topic}/retry_1"] td.due').inner_text()
        assert due.startswith(time.strftime("%Y-", time.gmtime())), due  # an hour ahead, shown on the overview
        page.goto(f"http://127.0.0.1:{port}/tiers")
        section = page.locator(f'section[data-tier="{tier}"]')
        assert section.locator(".waiting").inner_text() == "4"
        assert section.locator("tbody tr").count() == 4  # each with its due time, an hour ahead

        # Kill the a's, with a reason: a confirmation first.
        section.locator('input[name="key"]').fill("a")
        section.locator('input[name="reason"]').fill("bad batch")
        section.locator("button.kill").click()
        page.locator("#confirm").click()
        assert "Command" in page.locator("#sent").inner_text()
        wait_until(lambda: len(read_to_end(bootstrap, env["APP_DLQ"])) == 2, timeout=WITHIN, what="the a's killed")

        # Retry the rest now: handled within seconds, not in an hour.
        started = time.monotonic()
        page.goto(f"http://127.0.0.1:{port}/tiers")
        page.locator(f'section[data-tier="{tier}"] button.flush').click()
        page.locator("#confirm").click()
        handled = lambda: Counter(e["value"] for e in ledger(book) if e["attempt"] == 1)  # noqa: E731
        wait_until(lambda: set(handled()) == {"fail-1-1-b", "fail-1-3-b"}, timeout=WITHIN, what="the b's handled")
        assert time.monotonic() - started < WITHIN
        page.goto(f"http://127.0.0.1:{port}/tiers")
        wait_until(
            lambda: (
                page.reload() is not None and page.locator(f'section[data-tier="{tier}"] .waiting').inner_text() == "0"
            ),
            timeout=30,
            what="the tier empty on the page",
        )
    finally:
        assert stop(console) == 0
        assert stop(running) == 0
    dead = sorted((m.value() or b"").decode() for m in read_to_end(bootstrap, env["APP_DLQ"]))
    assert dead == ["fail-1-0-a", "fail-1-2-a"]
    assert handled() == Counter({"fail-1-1-b": 1, "fail-1-3-b": 1})
