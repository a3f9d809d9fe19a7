"""``kretry dlq summary``: counts by origin topic and error type of every record the DLQ holds. Read-only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kretry.config import Settings
from kretry.dlq._reader import Reader
from kretry.dlq._records import DeadRecord, error_type, iso


@dataclass
class Summary:
    total: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_error: Counter[tuple[str, str]] = field(default_factory=Counter)  # (origin topic, error type)
    oldest: int | None = None
    newest: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_topic": dict(self.by_topic),
            "by_error": [{"topic": t, "error": e, "count": n} for (t, e), n in sorted(self.by_error.items())],
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
        }


def summarize(records: Iterable[DeadRecord]) -> Summary:
    """Pure: the counts of ``records``."""
    summary = Summary()
    for record in records:
        topic = record.origin_topic or "(unknown)"
        summary.total += 1
        summary.by_topic[topic] += 1
        summary.by_error[(topic, error_type(record.state.error))] += 1
        summary.oldest = record.timestamp if summary.oldest is None else min(summary.oldest, record.timestamp)
        summary.newest = record.timestamp if summary.newest is None else max(summary.newest, record.timestamp)
    return summary


def summary(settings: Settings) -> Summary:
    dlq = Reader(settings)
    try:
        return summarize(dlq.all_records())
    finally:
        dlq.close()
