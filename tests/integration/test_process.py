"""`kretry run` as a process: kill -9 and restart, two workers, SIGTERM, and the exit codes a supervisor sees."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kretry import cli
from kretry import headers as hdr
from tests.conftest import Broker
from tests.integration.kit import committed, complete_lines, header, produce, read_all, read_to_end, unique, wait_until
from tests.integration.workers import kretry_process, stop

NewTopic = Callable[..., str]
APP = "tests.integration.apps.ledger_app:retrier"


def ledger(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in complete_lines(path) if line.strip()]


def app_env(bootstrap: str, topics: list[str], ledger_path: Path, delays: str = "200ms,300ms") -> dict[str, str]:
    return {
        "KRETRY_BOOTSTRAP_SERVERS": bootstrap,
        "APP_GROUP": unique("svc"),
        "APP_DLQ": unique("dlq"),
        "APP_TOPICS": ",".join(topics),
        "APP_LEDGER": str(ledger_path),
        "APP_DELAYS": delays,
        # A killed worker's partitions move on once its session expires: the broker's minimum, not 45 s.
        "KRETRY_KAFKA": json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}),
    }


def assigned_stages(log: Path) -> int:
    if not log.exists():
        return 0
    events = [json.loads(line) for line in complete_lines(log) if line.startswith("{")]
    return len({e["stage"] for e in events if e.get("event") == "partitions assigned"})


def traffic(count: int) -> list[bytes]:
    """10% always fail, 10% fail once, the rest succeed."""
    kinds = ["poison" if i % 10 == 0 else "fail-1" if i % 10 == 1 else "ok" for i in range(count)]
    return [f"{kind}-{i}".encode() for i, kind in enumerate(kinds)]


def account(values: list[bytes], ledger_path: Path, bootstrap: str, dlq: str) -> tuple[int, int]:
    """Every record either succeeded (in the ledger) or sits in the DLQ: (lost, duplicates)."""
    dead = {m.value() for m in read_to_end(bootstrap, dlq)}
    successes = Counter(str(e["value"]).encode() for e in ledger(ledger_path) if e["ok"])
    missing = [v for v in values if v not in dead and successes[v] == 0]
    lost = len(missing)
    if missing:
        print("lost:", missing[:20])
    duplicates = sum(n - 1 for n in successes.values() if n > 1)
    return lost, duplicates


def test_kill_9_and_restart_loses_nothing(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("crash", partitions=3)
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book)
    values = traffic(900)
    producer = threading.Thread(
        target=lambda: [
            produce(bootstrap, topic, [(v, v, None) for v in values[i : i + 60]]) or time.sleep(0.2)
            for i in range(0, len(values), 60)
        ]
    )
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, log=log)
    producer.start()
    for _ in range(2):
        handled = len(ledger(book))
        wait_until(lambda h=handled: len(ledger(book)) > h + 50, timeout=60, what="progress before the kill")
        proc.kill()  # SIGKILL: no flush, no commit
        proc.wait(10)
        proc = kretry_process(APP, env, log=log)
    producer.join(60)

    poison = sum(1 for v in values if v.startswith(b"poison"))
    wait_until(lambda: sum(1 for e in ledger(book) if e["ok"]) >= len(values) - poison, timeout=90, what="all")
    wait_until(
        lambda: len({m.value() for m in read_to_end(bootstrap, env["APP_DLQ"])}) >= poison,
        timeout=60,
        what="every poison record in the DLQ",
    )
    lost, duplicates = account(values, book, bootstrap, env["APP_DLQ"])
    assert stop(proc) == 0
    assert lost == 0
    print(f"kill -9 twice over {len(values)} records: lost 0, duplicates {duplicates}")


def test_two_workers_share_the_partitions(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("pair", partitions=4)
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book, delays="300ms")
    first = kretry_process(APP, env, log=tmp_path / "a.log")
    second = kretry_process(APP, env, log=tmp_path / "b.log")
    try:
        wait_until(
            lambda: assigned_stages(tmp_path / "a.log") == 2 and assigned_stages(tmp_path / "b.log") == 2,
            timeout=60,
            what="both workers assigned",
        )
        time.sleep(3)  # let the group settle before the traffic: the assertion is on who handled what
        values = traffic(400)
        produce(bootstrap, topic, [(f"key-{i}".encode(), v, None) for i, v in enumerate(values)])
        wait_until(lambda: sum(1 for e in ledger(book) if e["ok"]) >= 360, timeout=60, what="all handled")
        wait_until(lambda: len(read_to_end(bootstrap, env["APP_DLQ"])) >= 40, timeout=30, what="the DLQ")
        lost, _ = account(values, book, bootstrap, env["APP_DLQ"])
    finally:
        codes = [stop(first), stop(second)]
    assert lost == 0
    assert codes == [0, 0]
    pids = {e["pid"] for e in ledger(book) if e["attempt"] == 0}
    assert pids == {first.pid, second.pid}, "both workers should have handled main-topic records"


def test_sigterm_finishes_in_flight_work_and_exits_0(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("term")
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book, delays="1s")
    env["APP_SLOW"] = "0.3"
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, log=log)
    wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="assignment")
    produce(bootstrap, topic, [(None, f"slow-{i}".encode(), None) for i in range(40)])
    wait_until(lambda: len(ledger(book)) >= 3, timeout=30, what="handling to start")

    started = time.monotonic()
    assert stop(proc, signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 10

    handled = len(ledger(book))
    assert 3 <= handled < 40
    # Everything handled was committed; the next run starts exactly after it.
    assert committed(bootstrap, env["APP_GROUP"], topic) == [handled]


def test_forwarded_records_survive_a_sigterm(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("termfwd")
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book, delays="30s")
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, log=log)
    wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="assignment")
    produce(bootstrap, topic, [(None, f"fail-5-{i}".encode(), None) for i in range(50)])
    wait_until(lambda: committed(bootstrap, env["APP_GROUP"], topic) == [50], timeout=30, what="main committed")
    assert stop(proc) == 0
    waiting = read_all(bootstrap, f"{topic}_retry_1", expected=50)
    assert sorted(m.value() for m in waiting) == sorted(f"fail-5-{i}".encode() for i in range(50))
    assert all(header(m, hdr.DUE_AT) for m in waiting)


# -- exit codes ---------------------------------------------------------------------------------------------


def run_cli(env: dict[str, str], app: str = APP, *args: str) -> tuple[int, str]:
    proc = kretry_process(app, env, *args)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def test_exit_code_for_a_missing_module(bootstrap: str, tmp_path: Path) -> None:
    code, err = run_cli({"KRETRY_BOOTSTRAP_SERVERS": bootstrap}, "no_such_module_here:retrier")
    assert code == cli.EXIT_IMPORT
    assert "no module named 'no_such_module_here'" in err


def test_an_import_error_inside_the_app_is_shown_as_such(bootstrap: str, tmp_path: Path) -> None:
    (tmp_path / "brokenapp.py").write_text("import definitely_not_installed_pkg\n")
    code, err = run_cli({"KRETRY_BOOTSTRAP_SERVERS": bootstrap}, "brokenapp:retrier", "--app-dir", str(tmp_path))
    assert code == cli.EXIT_IMPORT
    assert "No module named 'definitely_not_installed_pkg'" in err
    assert "Traceback" in err


def test_exit_code_for_an_unknown_setting(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    env = app_env(bootstrap, [new_topic("cfg")], tmp_path / "l")
    env["KRETRY_BOOTSTRAP_SERVER"] = bootstrap  # the typo a user makes
    code, err = run_cli(env)
    assert code == cli.EXIT_CONFIG
    assert "KRETRY_BOOTSTRAP_SERVER" in err


def test_exit_code_for_a_bad_duration(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    env = app_env(bootstrap, [new_topic("dur")], tmp_path / "l", delays="5s,5 minutes")
    code, err = run_cli(env)
    assert code == cli.EXIT_CONFIG
    assert "delays[1]" in err
    assert "'5 minutes'" in err


def test_exit_code_for_a_missing_main_topic(bootstrap: str, tmp_path: Path) -> None:
    code, err = run_cli(app_env(bootstrap, [unique("absent")], tmp_path / "l"))
    assert code == cli.EXIT_TOPOLOGY
    assert "does not exist" in err


def test_exit_code_for_an_unreachable_broker(tmp_path: Path) -> None:
    env = app_env("127.0.0.1:1", ["whatever"], tmp_path / "l")
    code, err = run_cli(env, APP, "--connect-timeout", "2")
    assert code == cli.EXIT_BROKER
    assert "127.0.0.1:1" in err


def test_no_create_topics_names_what_is_missing(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("nocreate")
    env = app_env(bootstrap, [topic], tmp_path / "l", delays="1s")
    code, err = run_cli(env, APP, "--no-create-topics")
    assert code == cli.EXIT_TOPOLOGY
    assert f"{topic}_retry_1" in err
    assert env["APP_DLQ"] in err


@pytest.mark.parametrize("bad", ["not-a-target", "mod:"])
def test_exit_code_for_a_malformed_target(bad: str) -> None:
    code, err = run_cli({}, bad)
    assert code == cli.EXIT_IMPORT
    assert "MODULE:ATTR" in err


def test_sasl_settings_pass_through_and_the_password_never_shows(
    kafka: Broker, new_topic: NewTopic, tmp_path: Path
) -> None:
    if kafka.sasl_bootstrap is None:
        pytest.skip(f"the {kafka.kind} broker has no SASL listener; only the local JVM broker does")
    topic = new_topic("sasl")
    book = tmp_path / "ledger.jsonl"
    env = app_env(kafka.sasl_bootstrap, [topic], book, delays="0s")
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "kretry"}
    env["KRETRY_KAFKA"] = json.dumps({**sasl, "sasl.password": "kretry-secret", "session.timeout.ms": 6000})
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, "--log-level", "DEBUG", log=log)
    try:
        wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="assignment over SASL")
        produce(kafka.bootstrap, topic, [(b"k", b"poison-1", None)])
        (dead,) = read_all(kafka.bootstrap, env["APP_DLQ"], expected=1)
    finally:
        assert stop(proc) == 0
    assert header(dead, hdr.ORIGIN_TOPIC) == topic.encode()
    text = log.read_text()
    assert '"sasl.username": "kretry"' in text  # the settings are logged...
    assert "kretry-secret" not in text  # ...but never the password

    env["KRETRY_KAFKA"] = json.dumps({**sasl, "sasl.password": "wrong-secret"})
    code, err = run_cli(env, APP, "--connect-timeout", "3")
    assert code == cli.EXIT_BROKER
    assert "wrong-secret" not in err


def test_a_sigterm_during_start_up_is_a_clean_stop(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    env = app_env(bootstrap, [new_topic("early")], tmp_path / "l")
    # An app whose import takes a while, as real ones that load models or warm caches do.
    (tmp_path / "slowapp.py").write_text(
        "import time\ntime.sleep(2)\nfrom tests.integration.apps.ledger_app import retrier\n"
    )
    proc = kretry_process("slowapp:retrier", env, "--app-dir", str(tmp_path), log=tmp_path / "worker.log")
    time.sleep(1.5)  # inside the app's import: no worker yet
    assert stop(proc) == 0
