"""Benchmark 4: head-of-line blocking. 1% of records fail once; kretry delays them 5 s on a retry topic, the
bare loop sleeps 5 s in the handler and tries again. Reported: throughput of the healthy records."""

from __future__ import annotations

from typing import Any

from bench import bare
from bench.common import Clock, create_topics, delete_topics, produce, running, unique
from kretry import Message, Retrier
from kretry.topology import retry_topic

KRETRY_RECORDS = 50_000
# Every failure costs the blocking loop 5 s, so its run is kept short; its rate does not depend on the count.
BARE_RECORDS = 800
PAUSE = 5.0
BAD = b"bad"


def _value(i: int) -> bytes:
    return (BAD if i % 100 == 0 else b"ok-").ljust(100, b"x")


def _bad(value: bytes | None) -> bool:
    return (value or b"").startswith(BAD)


def bare_rate(records: int) -> float:
    topic = unique("holbare")
    create_topics([topic])
    produce(topic, records, value=_value)
    healthy = Clock()
    failed: set[tuple[int, int]] = set()

    def process(msg: Any) -> None:
        if _bad(msg.value()):
            key = (msg.partition(), msg.offset())
            if key not in failed:
                failed.add(key)
                raise RuntimeError("fails once")
        else:
            healthy.tick()

    try:
        first, _ = bare.blocking_retry_loop(topic, unique("holbare"), records, process, PAUSE)
    finally:
        delete_topics([topic])
    return healthy.count / (healthy.last - first)


def kretry_rate(records: int) -> float:
    topic = unique("holkretry")
    dlq = unique("holkretry-dlq")
    create_topics([topic, retry_topic(topic, 1), dlq])
    produce(topic, records, value=_value)
    healthy, seen = Clock(), Clock()
    target = sum(1 for i in range(records) if not _bad(_value(i)))
    retrier = Retrier(group_id=unique("holkretry"), dlq_topic=dlq)

    @retrier.handler(topic, delays=[f"{PAUSE:g}s"])
    def handle(msg: Message) -> None:
        seen.tick()
        if _bad(msg.raw_value):
            if msg.attempt == 0:
                raise RuntimeError("fails once")
        else:
            healthy.tick()

    try:
        with running(retrier) as worker:
            worker.wait(lambda: healthy.count >= target, timeout=120, what="every healthy record handled")
    finally:
        delete_topics([topic, retry_topic(topic, 1), dlq])
    assert seen.first is not None
    return healthy.count / (healthy.last - seen.first)


def run() -> dict[str, Any]:
    bare_rps = bare_rate(BARE_RECORDS)
    kretry_rps = kretry_rate(KRETRY_RECORDS)
    return {
        "hol_ratio": kretry_rps / bare_rps,
        "hol_bare_rps": bare_rps,
        "hol_kretry_rps": kretry_rps,
        "hol_bare_records": BARE_RECORDS,
        "hol_kretry_records": KRETRY_RECORDS,
        "hol_fail_share": 0.01,
        "hol_delay_s": PAUSE,
    }
