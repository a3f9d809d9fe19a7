"""Retry policies on a real broker: each test shows a record's path — which topics, which attempt, which headers."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

import kretry
from kretry import Message, NonRetryable, Retrier, RetryLater
from kretry import headers as hdr
from kretry.stage import StageStopped
from tests.integration.kit import committed, end_offsets, header, produce, read_all, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def make(bootstrap: str, **kwargs: object) -> Retrier:
    kwargs.setdefault("dlq_topic", unique("dlq"))
    return Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, **kwargs)  # type: ignore[arg-type]


def test_exponential_backoff_sets_each_tier_due_time(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("expo")
    retrier = make(bootstrap)
    failed_at: dict[int, float] = {}

    @retrier.handler(topic, delays=kretry.exponential("200ms", retries=3, max_delay="500ms"))
    def handle(msg: Message) -> None:
        failed_at[msg.attempt] = time.time() * 1000
        raise TimeoutError("downstream")

    with running(retrier):
        produce(bootstrap, topic, [(b"k", b"v", None)])
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)
        tiers = [read_all(bootstrap, f"{topic}_retry_{n}", expected=1)[0] for n in (1, 2, 3)]

    assert header(dead, hdr.ATTEMPT) == b"4"
    for n, (record, expected) in enumerate(zip(tiers, (200, 400, 500), strict=True)):
        delay = int(header(record, hdr.DUE_AT) or 0) - failed_at[n]
        assert expected - 5 <= delay <= expected + 100, f"tier {n + 1}: {delay:.0f} ms"


def test_non_retryable_goes_to_the_dlq_at_once(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("nonretry")
    retrier = make(bootstrap)

    @retrier.handler(topic, delays=["1s", "2s"], dead_letter_on=(KeyError,))
    def handle(msg: Message) -> None:
        if msg.value == b"bad-data":
            raise ValueError("unparseable order") from NonRetryable("schema mismatch")
        if msg.value == b"missing":
            raise KeyError("customer")
        if msg.attempt == 0:
            raise NonRetryable("order was cancelled")

    with running(retrier):
        produce(bootstrap, f"{topic}_retry_1", [(b"k3", b"third", None)])  # a record already on its first retry
        produce(bootstrap, topic, [(b"k1", b"bad-data", None), (b"k2", b"missing", None), (b"k0", b"cancel", None)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=3)

    errors = {m.value(): (header(m, hdr.ATTEMPT), header(m, hdr.ERROR)) for m in dead}
    assert errors == {
        b"bad-data": (b"1", b"ValueError: unparseable order [non-retryable]"),
        b"missing": (b"1", b"KeyError: 'customer' [non-retryable]"),
        b"cancel": (b"1", b"NonRetryable: order was cancelled [non-retryable]"),
    }
    assert end_offsets(bootstrap, f"{topic}_retry_1") == [1]  # only the record we put there ourselves
    assert end_offsets(bootstrap, f"{topic}_retry_2") == [0]


def test_retry_on_lists_the_only_retryable_failures(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("retryon")
    retrier = make(bootstrap)

    @retrier.handler(topic, delays=[0], retry_on=(TimeoutError,))
    def handle(msg: Message) -> None:
        raise TimeoutError("slow") if msg.value == b"slow" else ZeroDivisionError("bug")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"slow", None), (None, b"bug", None)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=2)

    assert {m.value(): header(m, hdr.ATTEMPT) for m in dead} == {b"slow": b"2", b"bug": b"1"}


def test_retry_later_overrides_the_tier_delay(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("later")
    retrier = make(bootstrap)
    times: dict[int, float] = {}

    @retrier.handler(topic, delays=["100ms"])
    def handle(msg: Message) -> None:
        times[msg.attempt] = time.time() * 1000
        if msg.attempt == 0:
            raise RetryLater(after=1.5, reason="429 Too Many Requests")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"rate-limited", None)])
        wait_until(lambda: 1 in times, timeout=10, what="the retry")
        (retry,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)

    due = int(header(retry, hdr.DUE_AT) or 0)
    assert 1495 <= due - times[0] <= 1600
    assert times[1] >= due
    assert header(retry, hdr.ERROR) == b"RetryLater: 429 Too Many Requests"


def test_local_retries_happen_in_place_before_hopping(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("local")
    retrier = make(bootstrap)
    calls: list[tuple[bytes, int, float]] = []

    @retrier.handler(topic, delays=["1s"], local_retries=2, local_backoff="50ms")
    def handle(msg: Message) -> None:
        calls.append((msg.value or b"", msg.attempt, time.monotonic()))
        tries = sum(1 for v, a, _ in calls if v == msg.value and a == msg.attempt)
        if (msg.value == b"blip" and tries < 3) or msg.value == b"down":
            raise ConnectionError("reset by peer")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"blip", None), (None, b"down", None)])
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [2], what="main committed")
        (moved,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)

    blip = [t for v, _, t in calls if v == b"blip"]
    assert len(blip) == 3  # two local retries, then success: it never hopped
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(blip))
    assert moved.value() == b"down"
    assert [a for v, a, _ in calls if v == b"down"][:3] == [0, 0, 0]


def test_async_handlers_run_concurrently_and_commit_in_order(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("async")
    retrier = make(bootstrap)
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    @retrier.handler(topic, delays=[0], concurrency=5)
    async def handle(msg: Message) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        await asyncio.sleep(0.2)
        with lock:
            in_flight -= 1
        if msg.value == b"fail" and msg.attempt == 0:
            raise RuntimeError("async failure")

    with running(retrier):
        produce(bootstrap, topic, [(None, b"fail" if i % 5 == 0 else b"ok", None) for i in range(30)])
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [30], timeout=30, what="commits")
        wait_until(
            lambda: committed(bootstrap, f"{retrier.group_id}.{topic}_retry_1", f"{topic}_retry_1") == [6],
            timeout=30,
            what="retries handled",
        )

    assert 2 <= peak <= 5
    assert end_offsets(bootstrap, retrier.dlq_topic or "") == [0]  # every failure succeeded on its retry


def test_json_deserializer_and_poison_values(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("json")
    retrier = make(bootstrap)
    seen: list[object] = []

    @retrier.handler(topic, delays=[0], value_deserializer=kretry.json)
    def handle(msg: Message) -> None:
        seen.append(msg.value)
        if msg.value == {"fail": True}:
            raise RuntimeError("valid JSON, failing handler")

    raw = b'{"fail": true}'
    with running(retrier):
        produce(bootstrap, topic, [(b"a", b'{"id": 1}', None), (b"b", b"{not json", None), (b"c", raw, None)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=2)

    assert seen[0] == {"id": 1}
    by_key = {m.key(): m for m in dead}
    assert by_key[b"b"].value() == b"{not json"
    assert (header(by_key[b"b"], hdr.ERROR) or b"").startswith(
        b"DeserializationError: deserialization: JSONDecodeError"
    )
    assert header(by_key[b"b"], hdr.ATTEMPT) == b"1"
    assert by_key[b"c"].value() == raw  # the bytes travel, not a re-encoding of what the handler saw
    assert header(by_key[b"c"], hdr.ATTEMPT) == b"2"


def test_without_a_dlq_drop_counts_and_commits(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("drop")
    retrier = make(bootstrap, dlq_topic=None)
    retrier.handler(topic, on_exhausted="drop")(lambda msg: 1 / 0)

    with running(retrier) as worker:
        produce(bootstrap, topic, [(None, b"x", None)] * 3)
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [3], what="commits")
        assert worker.metrics.count(topic, "main", "dropped") == 3


def test_without_a_dlq_stop_leaves_the_offset_uncommitted(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("stop")
    retrier = make(bootstrap, dlq_topic=None)

    @retrier.handler(topic, on_exhausted="stop")
    def handle(msg: Message) -> None:
        if msg.value == b"poison":
            raise ValueError("cannot handle")

    with pytest.raises(StageStopped, match="cannot handle"), running(retrier):  # noqa: PT012
        produce(
            bootstrap,
            topic,
            [(None, b"fine", None), (None, b"fine", None), (None, b"poison", None), (None, b"fine", None)],
        )
        time.sleep(3)
    assert committed(bootstrap, retrier.group_id, topic) == [2]


def test_max_age_sends_old_records_to_the_dlq(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("age")
    retrier = make(bootstrap)
    retrier.handler(topic, delays=["1s", "1s"], max_age="1m")(lambda msg: 1 / 0)

    producer = Producer({"bootstrap.servers": bootstrap})
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    producer.produce(topic, key=b"old", value=b"stale", timestamp=an_hour_ago)
    producer.produce(topic, key=b"new", value=b"fresh")
    producer.flush(10)
    with running(retrier):
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=2, timeout=20)

    by_key = {m.key(): m for m in dead}
    assert header(by_key[b"old"], hdr.ERROR) == b"ZeroDivisionError: division by zero [max-age]"
    assert header(by_key[b"old"], hdr.ATTEMPT) == b"1"
    assert header(by_key[b"new"], hdr.ATTEMPT) == b"3"


def test_a_custom_retry_topic_pattern(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("pattern")
    retrier = make(bootstrap)
    seen: list[str] = []

    @retrier.handler(topic, delays=[0, "1ms"], retry_topic="{topic}.retry.{attempt}")
    def handle(msg: Message) -> None:
        seen.append(msg.topic)
        raise RuntimeError("again")

    with running(retrier):
        produce(bootstrap, topic, [(None, json.dumps({"a": 1}).encode(), None)])
        read_all(bootstrap, retrier.dlq_topic or "", expected=1)

    assert seen == [topic, f"{topic}.retry.1", f"{topic}.retry.2"]
