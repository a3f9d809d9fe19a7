"""``kretry dlq peek``: the oldest DLQ records in a state (pending by default), with their state. Read-only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from kretry.config import Settings
from kretry.dlq._filter import Filter, Only
from kretry.dlq._ledger import read_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import ALL, PENDING, STATES, DeadRecord, LedgerEntry, marked, oldest_first

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack


def check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")


def with_status(records: Iterator[DeadRecord], ledger: Mapping[str, LedgerEntry]) -> Iterator[DeadRecord]:
    """Each record with its state per the ledger."""
    for record in records:
        entry = marked(record, ledger)
        yield record if entry is None else replace(record, status=entry.action, status_at=entry.at)


def peek(settings: Settings, count: int = 10, *, state: str = PENDING, **only: Unpack[Only]) -> list[DeadRecord]:
    """The oldest ``count`` DLQ records in ``state`` (pending, replayed, discarded or all) that the filters
    ``only`` match, each with its state."""
    if count < 1:
        raise ValueError("count must be at least 1")
    check_state(state)
    where = Filter(**only)
    dlq = Reader(settings)
    try:
        ledger = read_ledger(dlq)
        found: list[DeadRecord] = []
        for partition in dlq.partitions:
            low, high = dlq.watermarks(dlq.topic, partition)
            taken = 0
            for record in with_status(dlq.records(partition, low, high), ledger):
                if where(record) and state in (ALL, record.status):
                    found.append(record)
                    taken += 1
                    if taken >= count:
                        break
        return oldest_first(found, count)
    finally:
        dlq.close()
