"""``kretry dlq peek``: the oldest DLQ records not yet replayed. Read-only."""

from __future__ import annotations

from kretry.config import Settings
from kretry.dlq._ledger import read_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import DeadRecord, is_replayed, matches, oldest_first


def peek(
    settings: Settings,
    count: int = 10,
    *,
    origin_topic: str | None = None,
    error: str | None = None,
    include_replayed: bool = False,
    group: str | None = None,
) -> list[DeadRecord]:
    """The oldest ``count`` DLQ records not yet replayed (all of them with ``include_replayed``), matching; with
    ``group``, only those its retry path dead-lettered."""
    if count < 1:
        raise ValueError("count must be at least 1")
    dlq = Reader(settings)
    try:
        ledger = {} if include_replayed else read_ledger(dlq)
        found: list[DeadRecord] = []
        for partition in dlq.partitions:
            low, high = dlq.watermarks(dlq.topic, partition)
            taken = 0
            for record in dlq.records(partition, low, high):
                if matches(record, origin_topic, error, group) and is_replayed(record, ledger) is None:
                    found.append(record)
                    taken += 1
                    if taken >= count:
                        break
        return oldest_first(found, count)
    finally:
        dlq.close()
