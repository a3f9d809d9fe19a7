"""`kretry console` in a real browser (Debian's chromium driven by Playwright), against the real broker and real
workers (`kretry run` in a subprocess). The screenshots in docs/console/ are taken here, from the real application.

`make chromium` installs the browser; `playwright install` (a download) is never needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.kit import end_offsets, produce, unique, wait_until
from tests.integration.test_http import free_port
from tests.integration.test_process import APP, app_env, ledger
from tests.integration.workers import ROOT, kretry_process, stop

SHOTS = ROOT / "docs" / "console"
SCRIPT = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"

NewTopic = Callable[..., str]


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def console_process(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`kretry console APP` as a user runs it; answering once this returns."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full_env.update(env, PYTHONPATH=str(ROOT))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "console", APP, "--port", str(port), "--log-format", "json", *args],
            env=full_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/login"
    wait_until(lambda: status_of(url) == 200 or proc.poll() is not None, timeout=60, what="the console to answer")
    assert proc.poll() is None, log.read_text()
    return proc


def worker(env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`kretry run APP`, once every stage has its partitions (its /readyz)."""
    port = free_port()
    proc = kretry_process(APP, {**env, **extra}, "--http-port", str(port), log=log)
    ready = f"http://127.0.0.1:{port}/readyz"
    wait_until(lambda: status_of(ready) == 200 or proc.poll() is not None, timeout=60, what="the worker's /readyz")
    assert proc.poll() is None, log.read_text()
    return proc


def cell(page: Page, topic: str, stage: str) -> str:
    return page.locator(f'tr[data-stage="{topic}/{stage}"] td.lag').inner_text()


def members(page: Page, topic: str, stage: str) -> str:
    return page.locator(f'tr[data-stage="{topic}/{stage}"] td.members').inner_text()


def shows(page: Page, read: Callable[[], str], expected: str, what: str, timeout: float = 60) -> None:
    """Wait for the page itself (its own refresh, never a reload) to show ``expected``."""
    wait_until(lambda: read() == expected, timeout=timeout, interval=0.5, what=what)


@pytest.mark.timeout(300)
def test_overview_dead_set_and_replay_in_a_browser(
    browser: Browser, bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("console")
    path = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], path, delays="100ms")
    dlq_topic = env["APP_DLQ"]

    # A worker whose handler fails on "poison-*" dead-letters two records, one header holding a script.
    failing = worker(env, tmp_path / "worker1.log")
    try:
        produce(bootstrap, topic, [(b"poison-a", b"poison-a", [("x-note", SCRIPT.encode())])])
        produce(bootstrap, topic, [(b"poison-b", b"poison-b", [("x-note", b"plain")])])
        wait_until(lambda: end_offsets(bootstrap, dlq_topic) == [2], timeout=60, what="2 records in the DLQ")
    finally:
        assert stop(failing) == 0

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    console = console_process(env, port, tmp_path / "console.log")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        # The overview: lag rises while no worker runs, and falls once one starts, without a reload.
        page.goto(base + "/")
        shows(page, lambda: cell(page, topic, "main"), "0", "main lag 0")
        produce(bootstrap, topic, [(f"k{i}".encode(), f"ok-{i}".encode(), None) for i in range(20)])
        shows(page, lambda: cell(page, topic, "main"), "20", "main lag 20 on the page")
        assert members(page, topic, "main") == "0"
        fixed = worker(env, tmp_path / "worker2.log", APP_NEVER_FAIL="1")
        try:
            shows(page, lambda: cell(page, topic, "main"), "0", "main lag back to 0 on the page")
            shows(page, lambda: members(page, topic, "main"), "1", "the worker as the main stage's one member")
            assert page.locator("#dlq-table td.pending").inner_text() == "2"
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

            # The dead set: both records, newest first; a filter by key finds one.
            page.goto(base + "/dead")
            assert page.locator("#dead-table tbody tr").count() == 2
            assert page.locator("#dead-table td.key").all_inner_texts() == ["poison-b", "poison-a"]
            assert page.locator("#held").inner_text() == "2"
            page.screenshot(path=str(SHOTS / "deadset.png"), full_page=True)
            page.fill('#filters input[name="key"]', "poison-a")
            page.click('#filters button[type="submit"]')
            assert page.locator("#dead-table td.key").all_inner_texts() == ["poison-a"]

            # Its page: the script in a header is text, and never ran.
            page.click("#dead-table tbody tr a")
            row = page.locator("#headers tr", has_text="x-note")
            assert row.locator("td").nth(1).inner_text() == SCRIPT
            assert page.evaluate("window.pwned === undefined")
            assert page.locator("#value").inner_text() == "poison-a"
            assert page.locator("#state").inner_text() == "pending"
            page.screenshot(path=str(SHOTS / "record.png"), full_page=True)
            record_url = page.url

            # Two people ask to replay it at once: both get the dry run and its confirmation ...
            other = browser.new_page()
            other.goto(record_url)
            for p in (page, other):
                p.click("#replay-one")
                assert p.locator("#would").inner_text() == "1"
            # ... the first replays it, and the worker, fixed now, handles it ...
            page.click("#confirm")
            assert page.locator("#replayed-count").inner_text() == "1"
            wait_until(
                lambda: any(e["key"] == "poison-a" and e["ok"] for e in ledger(path)),
                timeout=60,
                what="the worker to handle the replayed record",
            )
            page.goto(record_url)
            assert page.locator("#state").inner_text() == "replayed"
            # ... the second is refused, and told why.
            other.click("#confirm")
            assert other.locator("#replayed-count").inner_text() == "0"
            assert other.locator("#refused .refusal").inner_text().startswith(f"already replayed to {topic}")
            # Asked again, the dry run refuses it at once.
            page.click("#replay-one")
            assert page.locator("#would").inner_text() == "0"
            assert page.locator("#confirm").count() == 0
            assert page.locator("#refused .refusal").inner_text().startswith(f"already replayed to {topic}")
            assert [e["key"] for e in ledger(path) if e["key"] == "poison-a" and e["ok"]] == ["poison-a"]

            # Replay the selected: every row of the page (its select-all box), one of them replayed already.
            page.goto(base + "/dead")
            page.check("#select-all")
            assert page.locator('#dead-table input[name="offset"]:checked').count() == 2
            page.click("#replay-selected")
            assert page.locator("#would").inner_text() == "1"
            assert page.locator("#refused .refusal").inner_text().startswith("already replayed")
            page.click("#confirm")
            assert page.locator("#replayed-count").inner_text() == "1"
            assert page.locator("#replayed td a").inner_text() == "0:1"
            wait_until(
                lambda: any(e["key"] == "poison-b" and e["ok"] for e in ledger(path)),
                timeout=60,
                what="the worker to handle poison-b",
            )
            # Nothing is left to replay: "all matching" finds none.
            page.goto(base + "/dead")
            assert page.locator("#dead-table td.state").all_inner_texts() == ["replayed", "replayed"]
            page.click("#replay-matching")
            assert page.locator("#would").inner_text() == "0"
        finally:
            assert stop(fixed) == 0
    finally:
        page.close()
        assert stop(console) == 0


@pytest.mark.timeout(120)
def test_a_token_asks_for_a_login_and_an_action_needs_its_csrf_token(
    browser: Browser, bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic, dlq_topic = new_topic("console"), new_topic("dlq")
    env = {**app_env(bootstrap, [topic], tmp_path / "ledger.jsonl"), "KRETRY_CONSOLE_TOKEN": "s3cret-token"}
    env["APP_DLQ"] = dlq_topic
    produce(bootstrap, dlq_topic, [(b"k", b"v", None)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    console = console_process(env, port, tmp_path / "console.log", "--read-only")
    context = browser.new_context()
    try:
        page = context.new_page()
        answer = page.goto(base + "/dead")
        assert answer is not None
        assert answer.status == 401
        assert page.locator("h1").inner_text() == "Log in"
        page.fill('input[name="token"]', "wrong")
        page.click('#login button[type="submit"]')
        assert page.locator("#wrong").inner_text() == "Wrong token."
        page.fill('input[name="token"]', "s3cret-token")
        page.click('#login button[type="submit"]')
        assert page.locator("h1").inner_text() == "Overview"
        assert page.locator(f'tr[data-stage="{topic}/main"]').count() == 1
        assert page.locator(".badge").inner_text() == "read-only"
        page.goto(base + "/dead")
        assert page.locator("#dead-table tbody tr").count() == 1
        assert page.locator('#dead-table input[type="checkbox"]').count() == 0  # --read-only: no action shown
        assert page.locator("#replay-selected, #replay-matching").count() == 0
        page.goto(base + "/dead/0:0")
        assert page.locator("#replay-one").count() == 0

        # Logged in, a POST without the form's CSRF token is refused, as is one from another page's origin.
        status, text = page.evaluate(
            """async () => {
                const answer = await fetch("/dead/replay", {method: "POST",
                    body: new URLSearchParams({offset: "0:0", confirm: "yes"})});
                return [answer.status, await answer.text()];
            }"""
        )
        assert status == 403
        assert "missing or wrong CSRF token" in text
        assert status_of(base + "/") == 401  # a request without the session cookie gets the login page
    finally:
        context.close()
        os.kill(console.pid, signal.SIGTERM)
        assert console.wait(15) == 0
    assert "s3cret-token" not in (tmp_path / "console.log").read_text()


def test_a_non_loopback_console_without_a_token_refuses_to_start(tmp_path: Path, bootstrap: str) -> None:
    env = app_env(bootstrap, [unique("t")], tmp_path / "ledger.jsonl")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full_env.update(env, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "kretry.cli", "console", APP, "--host", "0.0.0.0", "--port", str(free_port())],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 4
    assert b"KRETRY_CONSOLE_TOKEN" in done.stderr


def test_a_busy_port_exits_4(tmp_path: Path, bootstrap: str) -> None:
    env = app_env(bootstrap, [unique("t")], tmp_path / "ledger.jsonl")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full_env.update(env, PYTHONPATH=str(ROOT))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "kretry.cli", "console", APP, "--port", str(port)],
            env=full_env,
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 4
    assert f"--port: cannot listen on 127.0.0.1:{port}".encode() in done.stderr


def test_an_app_that_cannot_be_imported_exits_3(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kretry.cli", "console", "no_such_module:retrier"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert b"no module named 'no_such_module'" in done.stderr
