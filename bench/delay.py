"""Benchmark 3: how late records leave a retry tier: handled (time.time()) minus their kretry-due-at.

``run``: every record waits the tier's 2 s. The others give one tier many due times, so a record due sooner sits
behind one due later in its partition: ``run_jitter`` (±50 % jitter), ``run_mixed`` (RetryLater delays from 0.2 s to
2 s), ``run_burst`` (2,000 records all due at the same millisecond).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

import kretry
from bench.common import BOOTSTRAP, PARTITIONS, create_topics, delete_topics, percentile, produce, running, unique
from kretry import Message, Retrier, RetryLater
from kretry import headers as hdr
from kretry.topology import retry_topic

RECORDS = 10_000
DELAY = "2s"
JITTER = 0.5
MIXED = (0.2, 0.5, 1.0, 1.5, 2.0)  # RetryLater(after=...) by offset, in turn
BURST = 2_000
BURST_AFTER = 3.0  # seconds from the start of the run to the burst's one due time


def due_at(topic: str, count: int) -> dict[tuple[int, int], int]:
    """(partition, offset) -> kretry-due-at (ms) of every record of a retry topic."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("due"), "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found: dict[tuple[int, int], int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    _, ours = hdr.split(msg.headers())
                    found[(msg.partition(), msg.offset())] = int(ours[hdr.DUE_AT])
    finally:
        consumer.close()
    return found


def lateness(name: str, records: int, delays: Any, fail: Callable[[Message], None]) -> list[float]:
    """Milliseconds from kretry-due-at to the handler, of every record: ``fail`` raises on its first attempt."""
    main = unique(name)
    retry = retry_topic(main, 1)
    dlq = unique(f"{name}-dlq")
    create_topics([main, retry, dlq])
    produce(main, records)
    handled: dict[tuple[int, int], float] = {}
    retrier = Retrier(group_id=unique(name), dlq_topic=dlq)

    @retrier.handler(main, delays=delays)
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            fail(msg)
        handled[(msg.partition, msg.offset)] = time.time()

    try:
        with running(retrier) as worker:
            worker.wait(lambda: len(handled) >= records, timeout=120, what="every delayed record handled")
        due = due_at(retry, records)
    finally:
        delete_topics([main, retry, dlq])
    return [(at - due[key] / 1000.0) * 1000.0 for key, at in handled.items() if key in due]


def later(msg: Message) -> None:
    raise RuntimeError("later")


def run(records: int = RECORDS) -> dict[str, Any]:
    late = lateness("delay", records, [DELAY], later)
    return {
        "lateness_p50_ms": percentile(late, 50),
        "lateness_p99_ms": percentile(late, 99),
        "lateness_max_ms": max(late),
        "lateness_min_ms": min(late),
        "lateness_records": len(late),
        "lateness_delay": DELAY,
    }


def run_jitter(records: int = RECORDS) -> dict[str, Any]:
    late = lateness("jitter", records, kretry.fixed(DELAY, retries=1, jitter=JITTER), later)
    return {
        "lateness_jitter_p50_ms": percentile(late, 50),
        "lateness_jitter_p99_ms": percentile(late, 99),
        "lateness_jitter_min_ms": min(late),
    }


def run_mixed(records: int = RECORDS) -> dict[str, Any]:
    def mixed(msg: Message) -> None:
        raise RetryLater(after=MIXED[msg.offset % len(MIXED)])

    late = lateness("mixed", records, [DELAY], mixed)
    return {
        "lateness_mixed_p50_ms": percentile(late, 50),
        "lateness_mixed_p99_ms": percentile(late, 99),
        "lateness_mixed_min_ms": min(late),
    }


def run_burst(records: int = BURST) -> dict[str, Any]:
    at = time.time() + BURST_AFTER  # later than every record's failure: they all come due together

    def burst(msg: Message) -> None:
        raise RetryLater(after=max(0.0, at - time.time()))

    late = lateness("burst", records, ["10s"], burst)
    return {
        "lateness_burst_p50_ms": percentile(late, 50),
        "lateness_burst_p99_ms": percentile(late, 99),
        "lateness_burst_min_ms": min(late),
    }
