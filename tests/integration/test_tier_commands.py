"""`kretry tier flush | kill` as an operator runs them, obeyed by a running `kretry run` and by one started later."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kretry import Message, Retrier, control
from kretry import headers as hdr
from tests.integration.kit import (
    committed,
    end_offsets,
    header,
    produce,
    read_committed,
    read_to_end,
    unique,
    wait_until,
)
from tests.integration.test_process import APP, app_env, assigned_stages, ledger
from tests.integration.test_topics_cli import kretry
from tests.integration.workers import kretry_process, running, stop

NewTopic = Callable[..., str]
HOUR = 3600.0
WITHIN = 60.0  # well under the tier's hour: what "within seconds" is allowed to mean on a busy machine


def handled(book: Path, attempt: int) -> Counter[str]:
    """How many times each value was handled at ``attempt`` (0: the main topic, 1: the tier)."""
    return Counter(str(e["value"]) for e in ledger(book) if e["attempt"] == attempt)


def sent(out: str) -> str:
    """The command id `kretry tier ... --json` printed."""
    return str(json.loads(out)["id"])


def test_flush_and_kill_drain_a_tier_now_and_a_restarted_worker_obeys(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("drain")
    tier = f"{topic}_retry_1"
    book = tmp_path / "ledger.jsonl"
    env = app_env(bootstrap, [topic], book, delays="1h")
    # Every value fails once, on the main topic, and waits an hour in the tier. Keys a (to kill) and b (to flush
    # now) first, c (to flush while no worker runs) last: the tier's committed offset then stands at the first c
    # when the worker stops, and the restarted one reads only those.
    keys = ["a", "b", "a", "b", "a", "b", "b", "c", "c", "c"]
    values = [f"fail-1-{i}-{k}" for i, k in enumerate(keys)]
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, log=log)
    try:
        wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="both stages assigned")
        produce(bootstrap, topic, [(k.encode(), v.encode(), None) for k, v in zip(keys, values, strict=True)])
        wait_until(lambda: end_offsets(bootstrap, tier) == [10], timeout=60, what="all ten waiting in the tier")
        assert handled(book, 1) == Counter()

        code, out, err = kretry(env, "tier", "kill", tier, APP, "--key", "a", "--reason", "bad batch", "--json")
        assert code == 0, err
        kill_id = sent(out)
        wait_until(lambda: len(read_to_end(bootstrap, env["APP_DLQ"])) >= 3, timeout=WITHIN, what="a's in the DLQ")
        dead = read_to_end(bootstrap, env["APP_DLQ"])
        assert sorted((m.value() or b"").decode() for m in dead) == [v for v in values if v.endswith("-a")]
        for m in dead:
            error = (header(m, hdr.ERROR) or b"").decode()
            assert error.startswith(f"killed by operator: bad batch (command {kill_id}); last error: RuntimeError")
            assert header(m, hdr.ORIGIN_TOPIC) == topic.encode()
            assert header(m, hdr.ATTEMPT) == b"1"  # one attempt made, on the main topic; none in the tier
        assert handled(book, 1) == Counter()  # the others still wait

        started = time.monotonic()
        code, out, err = kretry(env, "tier", "flush", tier, APP, "--key", "b")
        assert code == 0, err
        assert out.startswith(f"flush {tier}: command ")
        b_values = [v for v in values if v.endswith("-b")]
        wait_until(lambda: set(handled(book, 1)) == set(b_values), timeout=WITHIN, what="b's handled")
        assert time.monotonic() - started < WITHIN  # not the hour the tier says
        # Only the tier's records at or past the first c remain for the group: nothing before it is undone.
        group = f"{env['APP_GROUP']}.{tier}"
        wait_until(lambda: committed(bootstrap, group, tier) == [7], timeout=30, what="the tier's commit at the c's")
    finally:
        assert stop(proc) == 0

    # No worker runs: the command waits for the next one.
    code, _, err = kretry(env, "tier", "flush", tier, APP, "--key", "c")
    assert code == 0, err
    proc = kretry_process(APP, env, log=log)
    try:
        c_values = [v for v in values if v.endswith("-c")]
        wait_until(lambda: set(handled(book, 1)) >= set(c_values), timeout=WITHIN, what="c's handled after restart")
        # A record that reaches the tier after the command waits its hour as usual.
        produce(bootstrap, topic, [(b"c", b"fail-1-late-c", None)])
        wait_until(lambda: end_offsets(bootstrap, tier) == [11], timeout=60, what="the late record in the tier")
        time.sleep(3)  # it would be handled within a fraction of a second if the command covered it
        assert "fail-1-late-c" not in handled(book, 1)
        wait_until(lambda: committed(bootstrap, group, tier) == [10], timeout=30, what="the commit at the late one")
    finally:
        assert stop(proc) == 0

    # Counted: each value handled once on the main topic; b's and c's once in the tier, a's never; a's in the DLQ
    # once each, and nothing else there.
    assert handled(book, 0) == Counter([*values, "fail-1-late-c"])
    assert handled(book, 1) == Counter(v for v in values if not v.endswith("-a"))
    assert all(e["ok"] for e in ledger(book) if e["attempt"] == 1)
    assert len(read_to_end(bootstrap, env["APP_DLQ"])) == 3


def test_tier_commands_refuse_what_is_not_a_tier_of_the_app(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("notier")
    env = app_env(bootstrap, [topic], tmp_path / "l", delays="1h")
    code, _, err = kretry(env, "tier", "flush", topic, APP)  # the main topic: nothing waits there
    assert code == 4
    assert f"{topic!r} is not a retry topic" in err
    # The control topic does not exist before a worker or `kretry topics create` made it.
    code, _, err = kretry(env, "tier", "kill", f"{topic}_retry_1", APP)
    assert code == 6, err
    assert "control topic" in err


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_paused_partitions_obey_in_key_order(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch, exactly_once: bool
) -> None:
    """With the due-time window off, each partition waits paused at its first record: a command resumes it, and
    the records of a key are killed or handled in their order. (Without a window nothing behind a partition's
    first uncovered record is read before that one is due: k0's records come first, so the kill reaches them.)"""
    monkeypatch.setenv("KRETRY_RETRY_WINDOW_RECORDS", "0")
    topic = new_topic("paused", partitions=2)
    tier = f"{topic}_retry_1"
    retrier = Retrier(
        group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"), exactly_once=exactly_once
    )
    seen: list[tuple[str, int]] = []  # (key, sequence) as the tier handled them
    lock = threading.Lock()

    @retrier.handler(topic, delays=["1h"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            raise RuntimeError("downstream down")
        with lock:
            seen.append(((msg.key or b"").decode(), int(msg.value or b"0")))

    keys = [f"k{i}" for i in range(6)]
    records = [(b"k0", str(seq).encode(), None) for seq in range(3)]
    records += [(k.encode(), str(seq).encode(), None) for seq in range(3) for k in keys[1:]]
    with running(retrier) as worker:
        stage = next(s for s in worker.stages if s.spec.topic == tier)
        produce(bootstrap, topic, records)
        # The main topic's offsets are committed once the forwards are acknowledged (or, exactly once, with them).
        main = retrier.group_id
        wait_until(lambda: sum(committed(bootstrap, main, topic, 2)) == 18, timeout=60, what="all sent to the tier")
        wait_until(lambda: stage.stats.paused == 2, timeout=30, what="both partitions paused")

        control.send(retrier.settings, control.KILL, tier, error="no such error")  # covers nothing
        control.send(retrier.settings, control.KILL, tier, key="k0", reason="cancelled")
        dlq = str(retrier.dlq_topic)
        wait_until(lambda: len(read_committed(bootstrap, dlq)) >= 3, timeout=WITHIN, what="k0 in the DLQ")
        dead = read_committed(bootstrap, dlq)
        assert [(m.key(), m.value()) for m in dead] == [(b"k0", b"0"), (b"k0", b"1"), (b"k0", b"2")]
        assert seen == []
        wait_until(lambda: stage.stats.paused == 2, timeout=30, what="both partitions paused again")

        started = time.monotonic()
        control.send(retrier.settings, control.FLUSH, tier)
        wait_until(lambda: len(seen) >= 15, timeout=WITHIN, what="the rest handled")
        assert time.monotonic() - started < WITHIN
        group = f"{retrier.group_id}.{tier}"
        ends = [0, 0]  # one past each partition's last record (exactly once, transaction markers follow)
        for m in read_committed(bootstrap, tier):
            ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
        wait_until(
            lambda: all(c >= e for c, e in zip(committed(bootstrap, group, tier, 2), ends, strict=True)),
            timeout=30,
            what="the tier committed past its last record",
        )
    assert Counter(seen) == Counter((k, seq) for k in keys[1:] for seq in range(3))  # each once, k0 never
    for k in keys[1:]:
        assert [seq for key, seq in seen if key == k] == [0, 1, 2]
    assert len(read_committed(bootstrap, dlq)) == 3
