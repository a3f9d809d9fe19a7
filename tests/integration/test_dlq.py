"""`kretry dlq peek | replay | summary` as a user runs them, against a DLQ filled the way a worker fills it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from kretry import config, dlq
from kretry import headers as hdr
from kretry.dlq._reader import Reader
from kretry.errors import ReplayInProgress
from tests.integration.kit import committed, end_offsets, produce
from tests.integration.workers import ROOT

NewTopic = Callable[..., str]


def kretry_process(bootstrap: str, dlq_topic: str, *args: str) -> subprocess.Popen[bytes]:
    """`kretry ARGS` started with only the settings a user would export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    env.update({"KRETRY_BOOTSTRAP_SERVERS": bootstrap, "KRETRY_DLQ_TOPIC": dlq_topic, "PYTHONPATH": str(ROOT)})
    return subprocess.Popen(
        [sys.executable, "-m", "kretry.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finished(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def kretry(bootstrap: str, dlq_topic: str, *args: str) -> tuple[int, str, str]:
    """`kretry ARGS` run to its end; (exit code, stdout, stderr)."""
    return finished(kretry_process(bootstrap, dlq_topic, *args))


READ_COMMITTED = ("-X", "isolation.level=read_committed")


def committed_records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` a read_committed consumer sees, read with kcat as a user would."""
    proc = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-J", *READ_COMMITTED],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


def kcat_header(record: dict[str, Any], name: str) -> str | None:
    """The last value of a header in a record as ``kcat -J`` shows it: ``[name, value, name, value, ...]``."""
    pairs = record.get("headers") or []
    values = [value for key, value in zip(pairs[::2], pairs[1::2], strict=True) if key == name]
    return values[-1] if values else None


def settings_for(bootstrap: str, dlq_topic: str) -> config.Settings:
    return config.load({"bootstrap_servers": bootstrap, "dlq_topic": dlq_topic}, environ={})


def dead(
    origin: str,
    offset: int,
    error: str = "RuntimeError: boom",
    replays: int | None = None,
    partition: int = 0,
    group: str = "svc",
) -> hdr.Headers:
    """The headers a worker gives a record it dead-letters (plus one header of the producer's own)."""
    return hdr.build(
        [("trace-id", f"t-{offset}".encode())],
        origin=hdr.Origin(origin, partition, offset, 1_700_000_000_000 + offset),
        attempt=2,
        error=error,
        group=group,
        due_at=None,
        replays=replays,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_peek_shows_and_filters_and_commits_nothing(bootstrap: str, new_topic: NewTopic) -> None:
    orders, payments = new_topic("orders"), new_topic("payments")
    dlq_topic = new_topic("dlq", partitions=2)
    produce(bootstrap, dlq_topic, [(b"k0", b"v0", dead(orders, 10)), (b"k1", b"v1", dead(orders, 11))], partition=0)
    produce(bootstrap, dlq_topic, [(b"k2", b"v2", dead(payments, 7, "ValueError: bad amount"))], partition=1)

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json")
    assert code == 0, err
    records = json_lines(out)
    assert sorted(str(r["dlq"]) for r in records) == ["0:0", "0:1", "1:0"]
    first = next(r for r in records if r["dlq"] == "0:0")
    assert first["key"] == "k0"
    assert first["value"] == "v0"
    assert first["origin"] == {"topic": orders, "partition": 0, "offset": 10}
    assert first["attempt"] == 2
    assert first["error"] == "RuntimeError: boom"
    assert first["replays"] == 0
    assert first["headers"] == {"trace-id": "t-10"}

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--origin-topic", payments)
    assert [r["dlq"] for r in json_lines(out)] == ["1:0"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--error", "valueerror")
    assert [r["key"] for r in json_lines(out)] == ["k2"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--count", "1", "--origin-topic", orders)
    assert [r["dlq"] for r in json_lines(out)] == ["0:0"]

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DLQ", "KEY", "GROUP", "ORIGIN", "ATTEMPT", "REPLAYS", "TIME", "STATE", "ERROR"]
    assert any(line.startswith("1:0") and f"{payments}[0]@7" in line and "ValueError" in line for line in lines)
    # Read-only: the replay cursor is untouched.
    assert committed(bootstrap, dlq.replay_group(dlq_topic), dlq_topic, 2) == [-1001, -1001]


def test_replaying_twice_never_replays_a_record_twice(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(bootstrap, dlq_topic, [(f"k{i}".encode(), f"v{i}".encode(), dead(orders, i)) for i in range(3)])

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "2")
    assert code == 0, err
    assert out.splitlines()[-1] == "replayed 2, refused 0"
    assert f"replayed 0:0 -> {orders} (kretry-replays=1)" in out
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "5")
    assert code == 0
    assert out.splitlines() == [f"replayed 0:2 -> {orders} (kretry-replays=1)", "replayed 1, refused 0"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "5")
    assert (code, out.splitlines()) == (0, ["replayed 0, refused 0"])
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:1")
    assert code == 8
    assert out.splitlines()[0].startswith(f"refused 0:1: already replayed to {orders} at ")

    back = committed_records(bootstrap, orders)
    assert sorted((m["key"], m["payload"]) for m in back) == [(f"k{i}", f"v{i}") for i in range(3)]
    for m in back:
        assert m["headers"] == ["trace-id", m["key"].replace("k", "t-"), hdr.REPLAYS, "1", hdr.GROUP, "svc"]
    assert committed(bootstrap, dlq.replay_group(dlq_topic), dlq_topic) == [3]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json")
    assert (code, out) == (0, "")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--all")
    assert len(json_lines(out)) == 3


def test_max_replays_offsets_and_dry_run(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(
        bootstrap,
        dlq_topic,
        [(b"tired", b"a", dead(orders, 0, replays=3)), (b"fresh", b"b", dead(orders, 1, replays=1))],
    )

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "10", "--dry-run", "--json")
    assert code == 8
    report = json.loads(out)
    assert report["dry_run"] is True
    assert report["replayed"] == [{"dlq": "0:1", "topic": orders, "replays": 2}]
    assert report["refused"] == [
        {"dlq": "0:0", "topic": orders, "refused": "replayed 3 times already (--max-replays 3)"}
    ]
    assert end_offsets(bootstrap, orders) == [0], "a dry run produces nothing"
    assert committed(bootstrap, dlq.replay_group(dlq_topic), dlq_topic) == [-1001]

    code, out, _ = kretry(
        bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:1", "--offset", "0:99", "--offset", "0:0"
    )
    assert code == 8
    assert out.splitlines() == [
        f"replayed 0:1 -> {orders} (kretry-replays=2)",
        "refused 0:99: no record at 0:99",
        "refused 0:0: replayed 3 times already (--max-replays 3)",
        "replayed 1, refused 2",
    ]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:0", "--max-replays", "4")
    assert code == 0
    assert [kcat_header(m, hdr.REPLAYS) for m in committed_records(bootstrap, orders)] == ["2", "4"]


def test_summary_and_usage_errors(bootstrap: str, new_topic: NewTopic) -> None:
    orders, payments = new_topic("orders"), new_topic("payments")
    dlq_topic = new_topic("dlq")
    produce(
        bootstrap,
        dlq_topic,
        [
            (None, b"1", dead(orders, 1, "RuntimeError: boom")),
            (None, b"2", dead(orders, 2, "RuntimeError: other")),
            (None, b"3", dead(orders, 3, "KeyError: 'sku'")),
            (None, b"4", dead(payments, 4, "TimeoutError")),
        ],
    )
    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["total"] == 4
    assert summary["by_topic"] == {orders: 3, payments: 1}
    assert {(e["topic"], e["error"]): e["count"] for e in summary["by_error"]} == {
        (orders, "RuntimeError"): 2,
        (orders, "KeyError"): 1,
        (payments, "TimeoutError"): 1,
    }
    assert summary["oldest"] <= summary["newest"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary")
    assert out.splitlines()[0].startswith(f"DLQ {dlq_topic}: 4 records, oldest ")

    code, _, err = kretry(bootstrap, "no-such-dlq-here", "dlq", "peek")
    assert code == 6
    assert "DLQ topic 'no-such-dlq-here' does not exist" in err
    code, _, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "3-4")
    assert code == 2
    assert "expected PARTITION:OFFSET" in err
    code, _, err = kretry(bootstrap, dlq_topic, "dlq", "replay")
    assert code == 2
    assert "one of the arguments --count --offset is required" in err


def fill(bootstrap: str, dlq_topic: str, origin: str, count: int) -> None:
    produce(bootstrap, dlq_topic, [(f"k{i}".encode(), f"v{i}".encode(), dead(origin, i)) for i in range(count)])


def test_a_replay_fenced_by_a_later_one_puts_nothing_back(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    fill(bootstrap, dlq_topic, orders, 150)
    settings = settings_for(bootstrap, dlq_topic)
    # The first replay stops right after it has read where to start, so that the second runs in between.
    read_cursor = Reader.cursor
    paused, resume = threading.Event(), threading.Event()

    def cursor_then_wait(self: Reader) -> dict[int, int]:
        found = read_cursor(self)
        if threading.current_thread().name == "first":
            paused.set()
            resume.wait(60)
        return found

    monkeypatch.setattr(Reader, "cursor", cursor_then_wait)
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["first"] = dlq.replay(settings, count=150)
        except ReplayInProgress as exc:
            outcome["first"] = exc

    thread = threading.Thread(target=first, name="first")
    thread.start()
    try:
        assert paused.wait(60)
        second = dlq.replay(settings, count=150)
    finally:
        resume.set()
        thread.join(90)

    assert len(committed_records(bootstrap, orders)) == 150
    assert len(second.replayed) == 150
    assert isinstance(outcome["first"], ReplayInProgress)
    assert f"another replay of {dlq_topic} took over" in str(outcome["first"])
    assert committed(bootstrap, dlq.replay_group(dlq_topic), dlq_topic) == [150]


def test_two_replays_started_together_put_each_record_back_once(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    fill(bootstrap, dlq_topic, orders, 150)

    procs = [kretry_process(bootstrap, dlq_topic, "dlq", "replay", "--count", "150") for _ in range(2)]
    results = [finished(p) for p in procs]

    assert len(committed_records(bootstrap, orders)) == 150
    for code, out, err in results:
        assert code in (0, 9), err
        if code == 9:
            assert f"another replay of {dlq_topic} took over; this one put nothing back" in err
        else:
            assert out.splitlines()[-1] in ("replayed 150, refused 0", "replayed 0, refused 0")


def produce_stub(bootstrap: str, dlq_topic: str, key: str, origin: str, offset: int, stub: str | None) -> None:
    """A stub as the worker writes one for a record too large to forward, produced by hand with kcat."""
    dropped = (
        "forward to dlq failed: Broker: Message size too large; 2000000-byte value and the producer's headers dropped"
    )
    headers = {
        hdr.ORIGIN_TOPIC: origin,
        hdr.ORIGIN_PARTITION: "0",
        hdr.ORIGIN_OFFSET: str(offset),
        hdr.ORIGIN_TIMESTAMP: "1700000000000",
        hdr.ATTEMPT: "1",
        hdr.ERROR: dropped,
        hdr.GROUP: "svc",
    }
    if stub is not None:
        headers[hdr.STUB] = stub
    args = [arg for name, value in headers.items() for arg in ("-H", f"{name}={value}")]
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", dlq_topic, "-K", "|", "-Z", *args],
        input=f"{key}|".encode(),  # an empty value, sent as null (-Z): the stub has none
        timeout=60,
        check=True,
    )


def test_replaying_a_stub_puts_the_original_back_not_a_tombstone(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(bootstrap, orders, [(b"big-1", b"original 1", [("trace-id", b"t-1")]), (b"big-2", b"original 2", None)])
    produce_stub(bootstrap, dlq_topic, "big-1", orders, 0, stub="value,headers")
    produce_stub(bootstrap, dlq_topic, "big-2", orders, 1, stub=None)  # written before kretry-stub existed

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "2")
    assert code == 0, err
    assert out.splitlines()[-1] == "replayed 2, refused 0"

    back = committed_records(bootstrap, orders)[2:]
    assert [(m["key"], m["payload"]) for m in back] == [("big-1", "original 1"), ("big-2", "original 2")]
    assert kcat_header(back[0], "trace-id") == "t-1"
    assert [kcat_header(m, hdr.REPLAYS) for m in back] == ["1", "1"]


def test_a_stub_whose_original_is_gone_is_refused(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(bootstrap, orders, [(b"big", b"original", None), (b"later", b"v", None)])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition(orders, 0, 1)]).values():
        future.result(timeout=30)  # what retention does to an old record: the log now starts at 1
    produce_stub(bootstrap, dlq_topic, "big", orders, 0, stub="value,headers")

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "1")
    assert code == 8
    assert out.splitlines() == [
        f"refused 0:0: the original {orders}[0]@0 is gone (the partition now starts at offset 1); "
        "a stub has nothing of its own to put back",
        "replayed 0, refused 1",
    ]
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["later"]


def test_a_record_whose_origin_is_the_dlq_or_its_ledger_is_refused(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    ledger = dlq.ledger_topic(dlq_topic)
    dlq.ensure_ledger(AdminClient({"bootstrap.servers": bootstrap}), dlq_topic)
    produce(
        bootstrap,
        dlq_topic,
        [(b"ok", b"v", dead(orders, 0)), (b"loop", b"v", dead(dlq_topic, 0)), (b"ledger", b"v", dead(ledger, 0))],
    )

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "3")
    assert code == 8
    assert out.splitlines() == [
        f"replayed 0:0 -> {orders} (kretry-replays=1)",
        f"refused 0:1: origin topic {dlq_topic!r} is this DLQ itself: a replay would only copy the record within it",
        f"refused 0:2: origin topic {ledger!r} is this DLQ's replay ledger, not a topic records come from",
        "replayed 1, refused 2",
    ]
    assert [m["key"] for m in committed_records(bootstrap, dlq_topic)] == ["ok", "loop", "ledger"]
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["ok"]


def test_a_replayed_record_carries_the_group_that_dead_lettered_it(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(
        bootstrap, dlq_topic, [(b"a", b"1", dead(orders, 0, group="svcA")), (b"b", b"2", dead(orders, 1, group="svcB"))]
    )

    code, _, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "2")
    assert code == 0, err

    back = committed_records(bootstrap, orders)
    assert [(m["key"], kcat_header(m, hdr.GROUP), kcat_header(m, hdr.REPLAYS)) for m in back] == [
        ("a", "svcA", "1"),
        ("b", "svcB", "1"),
    ]


def test_the_dlq_tools_filter_by_group(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(
        bootstrap,
        dlq_topic,
        [
            (b"a0", b"v", dead(orders, 0, group="svcA")),
            (b"b1", b"v", dead(orders, 1, "KeyError: 'x'", group="svcB")),
            (b"a2", b"v", dead(orders, 2, group="svcA")),
        ],
    )

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--group", "svcB")
    assert code == 0, err
    assert [(r["key"], r["group"]) for r in json_lines(out)] == [("b1", "svcB")]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--group", "svcA")
    lines = out.splitlines()
    assert lines[0].split() == ["DLQ", "KEY", "GROUP", "ORIGIN", "ATTEMPT", "REPLAYS", "TIME", "STATE", "ERROR"]
    assert [line.split()[:3] for line in lines[1:]] == [["0:0", "a0", "svcA"], ["0:2", "a2", "svcA"]]

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json")
    assert {(e["group"], e["topic"], e["error"]): e["count"] for e in json.loads(out)["by_error"]} == {
        ("svcA", orders, "RuntimeError"): 2,
        ("svcB", orders, "KeyError"): 1,
    }
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--group", "svcB")
    assert out.splitlines()[0].startswith(f"DLQ {dlq_topic}, group svcB: 1 records, oldest ")
    assert out.splitlines()[1].split() == ["GROUP", "ORIGIN", "TOPIC", "ERROR", "COUNT"]
    assert out.splitlines()[2].split() == ["svcB", orders, "KeyError", "1"]

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "10", "--group", "svcA")
    assert code == 0, err
    assert out.splitlines()[-1] == "replayed 2, refused 0"
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["a0", "a2"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:1", "--group", "svcA")
    assert (code, out.splitlines()[0]) == (8, "refused 0:1: kretry-group 'svcB' is not 'svcA'")
    assert [r.key for r in dlq.peek(settings_for(bootstrap, dlq_topic), group="svcB")] == [b"b1"]
