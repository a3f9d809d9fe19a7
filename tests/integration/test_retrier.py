"""The retry path on a real broker: what lands where, with which bytes and headers, and when."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from kretry import Message, Retrier
from kretry import headers as hdr
from tests.integration.kit import (
    committed,
    create_topics,
    end_offsets,
    header,
    produce,
    read_all,
    unique,
    wait_until,
)
from tests.integration.workers import running

NewTopic = Callable[..., str]


def make_retrier(bootstrap: str, dlq: str | None = None) -> Retrier:
    return Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=dlq or unique("dlq"))


def test_success_path_commits_and_forwards_nothing(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("ok", partitions=3)
    retrier = make_retrier(bootstrap)
    handled: list[tuple[int, bytes]] = []

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        handled.append((msg.partition, msg.value))

    with running(retrier):
        produce(bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode(), None) for i in range(60)])
        wait_until(lambda: sum(committed(bootstrap, retrier.group_id, topic, 3)) == 60, what="commits")

    assert sorted(v for _, v in handled) == sorted(f"v{i}".encode() for i in range(60))
    assert end_offsets(bootstrap, f"{topic}_retry_1", 3) == [0, 0, 0]
    assert end_offsets(bootstrap, retrier.dlq_topic or "", 3) == [0, 0, 0]


def test_failure_walks_every_tier_then_dlq_byte_identical(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("walk", partitions=2)
    retrier = make_retrier(bootstrap)
    seen: list[tuple[int, str, int]] = []
    user_headers = [("trace-id", b"t-1"), ("trace-id", b"t-2"), ("blob", b"\x00\xff\xfe"), ("empty", b"")]

    @retrier.handler(topic, delays=[0, "1ms"])  # two delays, two tiers: equal ones would share one
    def handle(msg: Message) -> None:
        seen.append((msg.attempt, msg.topic, msg.partition))
        assert msg.headers == user_headers  # kretry's own headers stay hidden from the handler
        assert msg.origin_topic == topic
        raise KeyError("no such order")

    value = bytes(range(256)) * 4
    with running(retrier):
        produce(bootstrap, topic, [(b"order-42", value, user_headers)], partition=1)
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)

    assert [s[0] for s in seen] == [0, 1, 2]
    assert [s[1] for s in seen] == [topic, f"{topic}_retry_1", f"{topic}_retry_2"]
    assert {s[2] for s in seen} == {1}  # the key's partition is kept on every hop
    assert dead.key() == b"order-42"
    assert dead.value() == value
    assert hdr.user_headers(dead.headers()) == user_headers
    names = [k for k, _ in dead.headers() if k.startswith("kretry-")]
    assert len(names) == len(set(names)), "kretry headers accumulated instead of being replaced"
    assert header(dead, hdr.ORIGIN_TOPIC) == topic.encode()
    assert header(dead, hdr.ORIGIN_PARTITION) == b"1"
    assert header(dead, hdr.ORIGIN_OFFSET) == b"0"
    assert header(dead, hdr.ATTEMPT) == b"3"
    assert header(dead, hdr.ERROR) == b"KeyError: 'no such order'"
    assert header(dead, hdr.GROUP) == retrier.group_id.encode()
    assert header(dead, hdr.DUE_AT) is None


def test_delays_are_never_early_and_promptly_late(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("delay", partitions=3)
    retrier = make_retrier(bootstrap)
    handled_at: dict[tuple[int, bytes], float] = {}

    @retrier.handler(topic, delays=["1500ms", "1s"])
    def handle(msg: Message) -> None:
        handled_at[(msg.attempt, msg.value or b"")] = time.time() * 1000
        raise RuntimeError("later")

    values = [f"r{i}".encode() for i in range(12)]
    with running(retrier):
        produce(bootstrap, topic, [(v, v, None) for v in values])
        read_all(bootstrap, retrier.dlq_topic or "", expected=len(values))
        retried = {1: read_all(bootstrap, f"{topic}_retry_1", 12), 2: read_all(bootstrap, f"{topic}_retry_2", 12)}

    lateness = []
    for attempt, records in retried.items():
        for rec in records:
            due = int(header(rec, hdr.DUE_AT) or b"0")
            failed_at = handled_at[(attempt - 1, rec.value())]
            assert due >= failed_at + (1500 if attempt == 1 else 1000) - 5
            lateness.append(handled_at[(attempt, rec.value())] - due)
    assert min(lateness) >= 0, f"handled before due: {min(lateness):.0f} ms"
    assert max(lateness) < 1000, f"handled {max(lateness):.0f} ms after due"


def test_two_topics_share_one_dlq(bootstrap: str, new_topic: NewTopic) -> None:
    orders, payments = new_topic("orders"), new_topic("payments", partitions=2)
    retrier = make_retrier(bootstrap)

    @retrier.handler(orders, delays=[0])
    def fail_orders(msg: Message) -> None:
        raise ValueError("bad order")

    @retrier.handler(payments)
    def fail_payments(msg: Message) -> None:
        raise ValueError("bad payment")

    with running(retrier):
        produce(bootstrap, orders, [(b"o", b"order", None)])
        produce(bootstrap, payments, [(b"p", b"payment", None)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=2)

    by_origin = {header(m, hdr.ORIGIN_TOPIC): (m.value(), header(m, hdr.ATTEMPT)) for m in dead}
    assert by_origin == {orders.encode(): (b"order", b"2"), payments.encode(): (b"payment", b"1")}
    assert end_offsets(bootstrap, retrier.dlq_topic or "", 2) != [0, 0]


def test_a_waiting_partition_does_not_block_the_others(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("hol", partitions=2)
    retrier = make_retrier(bootstrap)
    retry_handled: list[tuple[bytes, float]] = []

    @retrier.handler(topic, delays=["5s"])
    def handle(msg: Message) -> None:
        if msg.attempt:
            retry_handled.append((msg.value or b"", time.monotonic()))
        elif msg.value and msg.value.startswith(b"fail"):
            raise RuntimeError("retry me")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"fail-slow", None)], partition=0)
        wait_until(lambda: end_offsets(bootstrap, f"{topic}_retry_1", 2)[0] == 1, what="first retry")
        time.sleep(0.5)  # retry_1 partition 0 now waits ~4.5 s more
        produce(bootstrap, topic, [(None, b"ok-main", None)] * 20, partition=0)
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic, 2)[0] == 21, timeout=3, what="main")
        assert retry_handled == []  # the main stage went on while its retry stage waited
        wait_until(lambda: len(retry_handled) == 1, timeout=10, what="the delayed retry")


def test_corrupt_kretry_headers_do_not_crash_a_stage(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("corrupt")
    retrier = make_retrier(bootstrap)
    seen: list[tuple[int, bytes]] = []

    @retrier.handler(topic, delays=["200ms"])
    def handle(msg: Message) -> None:
        seen.append((msg.attempt, msg.value or b""))
        raise RuntimeError("still failing")

    garbage = [
        [(hdr.DUE_AT, b"\xff\xfe"), (hdr.ATTEMPT, b"-3"), (hdr.ORIGIN_OFFSET, b"lots")],
        [(hdr.DUE_AT, b"soon"), (hdr.ORIGIN_TIMESTAMP, b"")],
        [(hdr.ORIGIN_TOPIC, b"\x80"), (hdr.ORIGIN_PARTITION, b"9999999999999999999999")],
        None,
    ]
    with running(retrier):
        produce(bootstrap, f"{topic}_retry_1", [(b"k", f"g{i}".encode(), h) for i, h in enumerate(garbage)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=len(garbage))
        produce(bootstrap, topic, [(b"k", b"after", None)])
        read_all(bootstrap, retrier.dlq_topic or "", expected=len(garbage) + 1)

    assert sorted(v for a, v in seen if a == 1) == [b"after", b"g0", b"g1", b"g2", b"g3"]
    for msg in dead:
        assert header(msg, hdr.ATTEMPT) == b"2"
        assert header(msg, hdr.ORIGIN_TOPIC) in (topic.encode(),)


def test_kcat_reads_a_dead_letter_and_its_headers(bootstrap: str, new_topic: NewTopic) -> None:
    kcat = shutil.which("kcat")
    assert kcat is not None, "kcat is not installed (Debian package 'kcat')"
    topic = new_topic("kcatdlq")
    retrier = make_retrier(bootstrap)

    @retrier.handler(topic)
    def handle(msg: Message) -> None:
        raise ValueError("price must be positive")

    with running(retrier):
        produce(bootstrap, topic, [(b"order-9", b'{"price": -1}', [("source", b"web")])])
        read_all(bootstrap, retrier.dlq_topic or "", expected=1)

    out = subprocess.run(
        [
            kcat,
            "-C",
            "-b",
            bootstrap,
            "-t",
            retrier.dlq_topic or "",
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
            "-f",
            "%k\t%s\t%h\n",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    key, value, headers = out.split("\t")
    assert (key, value) == ("order-9", '{"price": -1}')
    assert headers.startswith("source=web,")
    # The stack trace comes last, as it reads: over several lines.
    headers, _, trace = headers.partition(",kretry-error-trace=")
    assert trace.startswith("Traceback (most recent call last):\n")
    assert trace.endswith("ValueError: price must be positive")
    fields = dict(h.split("=", 1) for h in headers.split(","))
    assert fields["kretry-origin-topic"] == topic
    assert fields["kretry-attempt"] == "1"
    assert fields["kretry-error"] == "ValueError: price must be positive"
    assert fields["kretry-group"] == retrier.group_id
    assert fields["kretry-error-class"] == "ValueError"


def test_a_handler_exception_never_stops_the_stage(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("survive")
    retrier = make_retrier(bootstrap)
    ok: list[bytes] = []
    lock = threading.Lock()

    @retrier.handler(topic, delays=[])
    def handle(msg: Message) -> None:
        if msg.value == b"boom":
            raise SystemError("handler bug")
        with lock:
            ok.append(msg.value or b"")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"boom" if i % 3 == 0 else b"fine", None) for i in range(30)])
        wait_until(lambda: len(ok) == 20, what="the healthy records")
        read_all(bootstrap, retrier.dlq_topic or "", expected=10)


@pytest.mark.parametrize("partitions", [1, 4])
def test_retry_topics_and_dlq_are_created_as_wide_as_needed(
    bootstrap: str, new_topic: NewTopic, partitions: int
) -> None:

    topic = new_topic("wide", partitions=partitions)
    retrier = make_retrier(bootstrap)
    retrier.handler(topic, delays=["1s", "2s"])(lambda msg: None)

    with running(retrier):
        pass

    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(timeout=10)
    for name in (f"{topic}_retry_1", f"{topic}_retry_2", retrier.dlq_topic or ""):
        assert len(meta.topics[name].partitions) == partitions
    # Created with the retention `kretry topics plan` shows: a week for retry topics, two for the DLQ.
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in (f"{topic}_retry_1", retrier.dlq_topic or "")]
    configs = {r.name: f.result(30) for r, f in admin.describe_configs(resources).items()}
    assert configs[f"{topic}_retry_1"]["retention.ms"].value == str(7 * 86_400_000)
    assert configs[retrier.dlq_topic or ""]["retention.ms"].value == str(14 * 86_400_000)
    assert configs[retrier.dlq_topic or ""]["cleanup.policy"].value == "delete"


def test_a_backlog_not_yet_due_at_assignment_is_handled_when_due(bootstrap: str, new_topic: NewTopic) -> None:
    """Records waiting on a retry topic when its stage starts: the partition waits, then resumes; none skipped."""
    topic = new_topic("backlog", partitions=2)
    retrier = make_retrier(bootstrap)
    handled: dict[bytes, float] = {}

    @retrier.handler(topic, delays=["2s"])
    def handle(msg: Message) -> None:
        handled[msg.value or b""] = time.time() * 1000

    due = int(time.time() * 1000) + 2500
    backlog = [(b"k", f"b{i}".encode(), [(hdr.DUE_AT, str(due + i * 20).encode())]) for i in range(40)]
    create_topics(bootstrap, [f"{topic}_retry_1"], 2)
    produce(bootstrap, f"{topic}_retry_1", backlog[:20], partition=0)
    produce(bootstrap, f"{topic}_retry_1", backlog[20:], partition=1)
    with running(retrier):
        wait_until(lambda: len(handled) == 40, timeout=20, what="the whole backlog")
        group = f"{retrier.group_id}.{topic}_retry_1"
        wait_until(lambda: committed(bootstrap, group, f"{topic}_retry_1", 2) == [20, 20], what="commits")

    for i in range(40):
        assert handled[f"b{i}".encode()] >= due + i * 20, f"b{i} handled early"
