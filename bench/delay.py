"""Benchmark 3: how late records leave a 2 s retry tier: handled (time.time()) minus their kretry-due-at."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.common import BOOTSTRAP, PARTITIONS, create_topics, delete_topics, percentile, produce, running, unique
from kretry import Message, Retrier
from kretry import headers as hdr
from kretry.topology import retry_topic

RECORDS = 10_000
DELAY = "2s"


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


def run(records: int = RECORDS) -> dict[str, Any]:
    main = unique("delay")
    retry = retry_topic(main, 1)
    dlq = unique("delay-dlq")
    create_topics([main, retry, dlq])
    produce(main, records)
    handled: dict[tuple[int, int], float] = {}
    retrier = Retrier(group_id=unique("delay"), dlq_topic=dlq)

    @retrier.handler(main, delays=[DELAY])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            raise RuntimeError("later")
        handled[(msg.partition, msg.offset)] = time.time()

    try:
        with running(retrier) as worker:
            worker.wait(lambda: len(handled) >= records, timeout=120, what="every delayed record handled")
        due = due_at(retry, records)
    finally:
        delete_topics([main, retry, dlq])
    late = [(at - due[key] / 1000.0) * 1000.0 for key, at in handled.items() if key in due]
    return {
        "lateness_p50_ms": percentile(late, 50),
        "lateness_p99_ms": percentile(late, 99),
        "lateness_max_ms": max(late),
        "lateness_min_ms": min(late),
        "lateness_records": len(late),
        "lateness_delay": DELAY,
    }
