"""``kretry dlq summary``: counts of the DLQ's records in a state (pending by default) by group, origin topic,
error type and message. Read-only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kretry.config import Settings
from kretry.dlq._filter import Filter, Only
from kretry.dlq._ledger import read_ledger
from kretry.dlq._peek import check_state, with_status
from kretry.dlq._reader import Reader
from kretry.dlq._records import ALL, DISCARDED, PENDING, REPLAYED, DeadRecord, error_kind, error_message, iso

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack


@dataclass
class Message:
    """One error type and normalised message: how many records, on which topics, of which groups."""

    count: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    state: str = PENDING  # the state counted; by_state counts every state
    total: int = 0
    by_state: Counter[str] = field(default_factory=lambda: Counter({PENDING: 0, REPLAYED: 0, DISCARDED: 0}))
    by_topic: Counter[str] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)
    by_error: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (group, origin topic, error type)
    by_message: dict[tuple[str, str], Message] = field(default_factory=dict)  # (error type, message)
    oldest: int | None = None
    newest: int | None = None

    def messages(self) -> list[tuple[str, str, Message]]:
        """Most frequent first."""
        return sorted(((e, m, n) for (e, m), n in self.by_message.items()), key=lambda x: (-x[2].count, x[0], x[1]))

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "total": self.total,
            "by_state": dict(self.by_state),
            "by_topic": dict(self.by_topic),
            "by_group": dict(self.by_group),
            "by_error": [
                {"group": g, "topic": t, "error": e, "count": n} for (g, t, e), n in sorted(self.by_error.items())
            ],
            "by_message": [
                {"error": e, "message": m, "count": n.count, "by_topic": dict(n.by_topic), "by_group": dict(n.by_group)}
                for e, m, n in self.messages()
            ],
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
        }


def summarize(records: Iterable[DeadRecord], state: str = ALL) -> Summary:
    """Pure: the counts of ``records`` in ``state`` (``by_state``: of all of them)."""
    summary = Summary(state)
    for record in records:
        summary.by_state[record.status] += 1
        if state not in (ALL, record.status):
            continue
        topic = record.origin_topic or "(unknown)"
        group = record.state.group or "(unknown)"
        kind = error_kind(record)
        summary.total += 1
        summary.by_topic[topic] += 1
        summary.by_group[group] += 1
        summary.by_error[(group, topic, kind)] += 1
        message = summary.by_message.setdefault((kind, error_message(record)), Message())
        message.count += 1
        message.by_topic[topic] += 1
        message.by_group[group] += 1
        summary.oldest = record.timestamp if summary.oldest is None else min(summary.oldest, record.timestamp)
        summary.newest = record.timestamp if summary.newest is None else max(summary.newest, record.timestamp)
    return summary


def summary(settings: Settings, *, state: str = PENDING, **only: Unpack[Only]) -> Summary:
    """The counts of the records the DLQ holds in ``state`` that the filters ``only`` match."""
    check_state(state)
    where = Filter(**only)
    dlq = Reader(settings)
    try:
        ledger = read_ledger(dlq)
        return summarize((r for r in with_status(dlq.all_records(), ledger) if where(r)), state)
    finally:
        dlq.close()
