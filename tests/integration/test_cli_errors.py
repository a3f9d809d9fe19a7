"""What `kretry` says when it cannot go on: one error, the same exit code for the same cause in every command,
librdkafka's own lines through structlog (JSON under --log-format json), and debug scoped to kretry."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from kretry import cli
from tests.integration.kit import unique, wait_until
from tests.integration.test_process import APP, app_env, assigned_stages, run_cli
from tests.integration.test_topics_cli import kretry
from tests.integration.workers import kretry_process, stop

NewTopic = Callable[..., str]
OPS = [
    ("topics", "plan", APP),
    ("topics", "create", APP),
    ("topics", "check", APP),
    ("stats", APP),
    ("dlq", "peek", APP),
    ("dlq", "summary", APP),
]


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of ``text`` as JSON; fails on a line that is not."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_an_unreachable_broker_under_json_logs_is_one_json_error_with_librdkafkas_reason(tmp_path: Path) -> None:
    env = app_env("127.0.0.1:1", ["whatever"], tmp_path / "l")
    code, err = run_cli(env, APP, "--connect-timeout", "2")
    assert code == cli.EXIT_BROKER
    events = json_lines(err)  # no raw %3|...|FAIL| line from librdkafka
    native = [e for e in events if e.get("logger") == "librdkafka"]
    assert native, "librdkafka's own lines should come through structlog"
    assert all(e["level"] == "error" and e["facility"] == "FAIL" for e in native)
    errors = [e for e in events if e.get("exit_code") is not None]
    assert len(errors) == 1, errors
    assert errors[0]["exit_code"] == cli.EXIT_BROKER
    assert "Connection refused" in str(errors[0]["error"])  # librdkafka's reason, kept in kretry's error
    assert "kretry:" not in err


def test_librdkafkas_hint_stays_in_the_error(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    env = app_env(bootstrap, [new_topic("ssl")], tmp_path / "l")
    env["KRETRY_KAFKA"] = json.dumps({"security.protocol": "SSL"})
    code, err = run_cli(env, APP, "--connect-timeout", "3")
    assert code == cli.EXIT_BROKER
    (error,) = [e for e in json_lines(err) if e.get("exit_code") is not None]
    assert "connecting to a PLAINTEXT broker listener?" in str(error["error"])


@pytest.mark.parametrize("args", OPS, ids=" ".join)
def test_a_bad_kafka_setting_exits_4_in_every_command(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = app_env(bootstrap, [new_topic("badconf")], tmp_path / "l")
    env["KRETRY_KAFKA"] = json.dumps({"no.such.setting": "1"})
    code, _, err = kretry(env, *args, "--log-format", "json")
    assert code == cli.EXIT_CONFIG, err
    (error,) = [e for e in json_lines(err) if e.get("exit_code") is not None]
    assert "no.such.setting" in str(error["error"])
    assert run_cli(env)[0] == cli.EXIT_CONFIG


@pytest.mark.parametrize("args", OPS, ids=" ".join)
def test_an_unreachable_broker_exits_5_in_every_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = app_env("127.0.0.1:1", [unique("unreachable")], tmp_path / "l")
    code, _, err = kretry(env, *args, "--log-format", "json")
    assert code == cli.EXIT_BROKER, err
    assert len([e for e in json_lines(err) if e.get("exit_code") is not None]) == 1


def test_worker_stopped_is_the_last_line_after_every_stage_stopped(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, app_env(bootstrap, [new_topic("stopped")], tmp_path / "l"), log=log)
    wait_until(lambda: assigned_stages(log) == 3, timeout=60, what="assignment")
    assert stop(proc, signal.SIGTERM) == 0
    events = [e["event"] for e in json_lines(log.read_text())]
    assert events[-1] == "worker stopped"
    assert events.count("stage stopped") == 3
    assert events.index("worker stopped") > max(i for i, e in enumerate(events) if e == "stage stopped")


def test_debug_is_kretrys_own_unless_widened(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("debug")
    for widen, expect_asyncio in (((), False), (("--log-all",), True)):
        log = tmp_path / f"worker{len(widen)}.log"
        env = app_env(bootstrap, [topic], tmp_path / "l")
        env["KRETRY_KAFKA"] = json.dumps({"debug": "metadata"})  # librdkafka's debug lines, kretry's to show
        proc = kretry_process(APP, env, "--log-level", "debug", "--http-port", "0", *widen, log=log)
        wait_until(lambda log=log: assigned_stages(log) == 3, timeout=60, what="assignment")  # type: ignore[misc]
        assert stop(proc) == 0
        events = json_lines(log.read_text())
        assert any(e["level"] == "debug" and e.get("logger") == "librdkafka" for e in events)
        assert any(e.get("logger") == "asyncio" for e in events) is expect_asyncio  # "Using selector: ..."
