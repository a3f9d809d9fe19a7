"""``kretry dlq summary``: counts by group, origin topic and error type of every record the DLQ holds. Read-only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kretry.config import Settings
from kretry.dlq._reader import Reader
from kretry.dlq._records import DeadRecord, error_type, iso, matches


@dataclass
class Summary:
    total: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)
    by_error: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (group, origin topic, error type)
    oldest: int | None = None
    newest: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_topic": dict(self.by_topic),
            "by_group": dict(self.by_group),
            "by_error": [
                {"group": g, "topic": t, "error": e, "count": n} for (g, t, e), n in sorted(self.by_error.items())
            ],
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
        }


def summarize(records: Iterable[DeadRecord]) -> Summary:
    """Pure: the counts of ``records``."""
    summary = Summary()
    for record in records:
        topic = record.origin_topic or "(unknown)"
        group = record.state.group or "(unknown)"
        summary.total += 1
        summary.by_topic[topic] += 1
        summary.by_group[group] += 1
        summary.by_error[(group, topic, error_type(record.state.error))] += 1
        summary.oldest = record.timestamp if summary.oldest is None else min(summary.oldest, record.timestamp)
        summary.newest = record.timestamp if summary.newest is None else max(summary.newest, record.timestamp)
    return summary


def summary(settings: Settings, *, group: str | None = None) -> Summary:
    """The counts of every record the DLQ holds, replayed or not; with ``group``, of that group's only."""
    dlq = Reader(settings)
    try:
        return summarize(r for r in dlq.all_records() if matches(r, group=group))
    finally:
        dlq.close()
