"""What a replay or a discard works on: the records it selects, what it refused and why, how far the cursor may
move. Reads only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from kretry.dlq._filter import Filter
from kretry.dlq._ledger import read_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import (
    REPLAYED,
    DeadRecord,
    LedgerEntry,
    Position,
    advance,
    format_position,
    marked,
    oldest_first,
)


@dataclass(frozen=True)
class Outcome:
    position: Position
    origin_topic: str | None
    replays: int | None  # the kretry-replays the replayed record carries (or would carry); None: not a replay
    refused: str | None = None  # why it was not replayed or discarded

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dlq": format_position(self.position), "topic": self.origin_topic}
        if self.refused is not None:
            out["refused"] = self.refused
        elif self.replays is not None:
            out["replays"] = self.replays
        return out


@dataclass
class Report:
    """What a replay (``action`` "replayed") or a discard ("discarded") did, or would do in a dry run."""

    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    action: str = REPLAYED

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is None]

    @property
    def replayed(self) -> list[Outcome]:
        return self.done

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            self.action: [o.to_json() for o in self.done],
            "refused": [o.to_json() for o in self.refused],
        }

    def refuse(self, record: DeadRecord, why: str) -> None:
        self.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))

    def accept(self, records: Sequence[DeadRecord]) -> None:
        for r in records:
            self.outcomes.append(
                Outcome(r.position, r.origin_topic, r.replays + 1 if self.action == REPLAYED else None)
            )


@dataclass
class Plan:
    """The records selected, those accepted, and what the cursor may pass."""

    ledger: dict[str, LedgerEntry]
    candidates: list[DeadRecord] = field(default_factory=list)
    accepted: list[DeadRecord] = field(default_factory=list)
    scanned: dict[int, list[DeadRecord]] = field(default_factory=dict)  # by partition, from the cursor on
    starts: dict[int, int] = field(default_factory=dict)  # the cursor as read
    settled: set[Position] = field(default_factory=set)  # refused for good: the cursor may pass them

    def cursor_moves(self, topic: str, done: set[Position]) -> list[TopicPartition]:
        """Past every run of settled records at the cursor: ``done`` now, refused for good, or marked already."""
        settled = self.settled | done
        moves = []
        for partition, records in self.scanned.items():
            flags = [(r.offset, r.position in settled or marked(r, self.ledger) is not None) for r in records]
            new = advance(self.starts[partition], flags)
            if new > self.starts[partition]:
                moves.append(TopicPartition(topic, partition, new))
        return moves


def check_selection(count: int | None, offsets: Sequence[Position]) -> None:
    if (count is None) == (not offsets):
        raise ValueError("give either count or offsets")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")


def select(dlq: Reader, report: Report, count: int | None, offsets: Sequence[Position], where: Filter) -> Plan:
    """The oldest ``count`` records ``where`` matches that the ledger does not mark, or the records at ``offsets``
    (``report`` learns of those missing or not matching)."""
    plan = Plan(read_ledger(dlq))
    if count is not None:
        plan.candidates = _oldest_unmarked(dlq, plan, count, where)
        return plan
    for position in dict.fromkeys(offsets):
        record = dlq.record_at(position)
        why = f"no record at {format_position(position)}" if record is None else where.mismatch(record)
        if record is None:
            report.outcomes.append(Outcome(position, None, 0, why))
        elif why is not None:
            report.refuse(record, why)
        else:
            plan.candidates.append(record)
    return plan


def _oldest_unmarked(dlq: Reader, plan: Plan, count: int, where: Filter) -> list[DeadRecord]:
    """From the cursor on; ``plan`` learns what was scanned."""
    plan.starts = dlq.cursor()
    found: list[DeadRecord] = []
    for partition in dlq.partitions:
        _, high = dlq.watermarks(dlq.topic, partition)
        taken = 0
        plan.scanned[partition] = []
        for record in dlq.records(partition, plan.starts[partition], high):
            plan.scanned[partition].append(record)
            if where(record) and marked(record, plan.ledger) is None:
                found.append(record)
                taken += 1
                if taken >= count:
                    break
    return oldest_first(found, count)
