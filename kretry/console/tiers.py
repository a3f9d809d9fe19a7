"""The records still in the ladder, as Sidekiq's Retries page: per retry tier, what waits and until when (the
first WAITING records each tier's group has not finished, read with bounded reads), and the commands that drain a
tier now, ``kretry tier flush | kill``'s (kretry.control)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer

from kretry import headers as hdr
from kretry.console.waiting import read, reader_conf, unfinished
from kretry.retrier import Retrier

WAITING = 50  # records shown a tier


@dataclass(frozen=True)
class Waiting:
    partition: int
    offset: int
    key: str | None
    due_at_ms: int | None
    attempt: int | None
    error: str | None


@dataclass(frozen=True)
class Tier:
    topic: str  # the retry topic
    of: str  # the main topic whose ladder it is
    delay_s: float
    waiting: int  # records its group has not finished
    first: list[Waiting]  # the first WAITING of them, soonest due first


def next_due(found: list[Tier]) -> dict[str, int]:
    """Pure: per tier topic, the earliest due time among the records read (what the overview shows)."""
    out = {}
    for tier in found:
        due = [w.due_at_ms for w in tier.first if w.due_at_ms is not None]
        if due:
            out[tier.topic] = min(due)
    return out


def tiers(retrier: Retrier, shown: int = WAITING) -> list[Tier]:
    """Each retry tier's waiting records, the first ``shown`` of each partition."""
    seen: set[str] = set()
    out = []
    conf = reader_conf(retrier.settings, f"{retrier.group_id}.console")
    reader = Consumer(conf)
    try:
        for spec in retrier.stages():
            if not spec.attempt or spec.topic in seen:
                continue  # the main stage; a tier shared by equal delays, once
            seen.add(spec.topic)
            ranges = unfinished(reader, conf, spec.topic, spec.group)
            count = sum(end - start for _, start, end in ranges)
            bounded = [(tp, start, min(end, start + shown)) for tp, start, end in ranges]
            first = [_waiting(msg) for msg in read(reader, bounded)]
            first.sort(key=lambda w: (w.due_at_ms or 0, w.partition, w.offset))
            out.append(Tier(spec.topic, spec.handler.topic, spec.delay, count, first[:shown]))
    finally:
        reader.close()
    return out


def _waiting(msg: object) -> Waiting:
    _, ours = hdr.split(msg.headers())  # type: ignore[attr-defined]
    state = hdr.read(ours)
    key = msg.key()  # type: ignore[attr-defined]
    return Waiting(
        partition=msg.partition(),  # type: ignore[attr-defined]
        offset=msg.offset(),  # type: ignore[attr-defined]
        key=None if key is None else key.decode("utf-8", "backslashreplace"),
        due_at_ms=state.due_at,
        attempt=state.attempt,
        error=state.error,
    )
