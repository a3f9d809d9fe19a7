"""``kretry dlq replay``: put DLQ records back on their origin topic; the reasoning is in ``kretry.dlq``'s docstring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kretry import config
from kretry.config import Settings
from kretry.dlq._ledger import read_ledger, write_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import (
    DEFAULT_MAX_REPLAYS,
    DeadRecord,
    LedgerEntry,
    Position,
    advance,
    format_position,
    is_replayed,
    matches,
    oldest_first,
    refusal,
    replay_group,
    replay_headers,
)
from kretry.errors import BrokerUnavailable

ACK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Outcome:
    position: Position
    origin_topic: str | None
    replays: int  # the kretry-replays the replayed record carries (or would carry)
    refused: str | None = None  # why it was not replayed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dlq": format_position(self.position), "topic": self.origin_topic}
        if self.refused is None:
            out["replays"] = self.replays
        else:
            out["refused"] = self.refused
        return out


@dataclass
class ReplayReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def replayed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is None]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "replayed": [o.to_json() for o in self.replayed],
            "refused": [o.to_json() for o in self.refused],
        }


def replay(
    settings: Settings,
    *,
    count: int | None = None,
    offsets: Sequence[Position] = (),
    origin_topic: str | None = None,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    dry_run: bool = False,
) -> ReplayReport:
    """Put DLQ records back on their origin topic: the oldest ``count`` not yet replayed, or those at ``offsets``."""
    if (count is None) == (not offsets):
        raise ValueError("give either count or offsets")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    if max_replays < 0:
        raise ValueError("max_replays must be >= 0")
    dlq = Reader(settings)
    try:
        ledger = read_ledger(dlq)
        report = ReplayReport(dry_run)
        scanned: dict[int, list[DeadRecord]] = {}
        starts: dict[int, int] = {}
        if count is not None:
            candidates, scanned, starts = _candidates(dlq, ledger, count, origin_topic)
        else:
            candidates = []
            for position in dict.fromkeys(offsets):
                record = dlq.record_at(position)
                if record is None:
                    report.outcomes.append(Outcome(position, None, 0, f"no record at {format_position(position)}"))
                elif not matches(record, origin_topic):
                    report.outcomes.append(Outcome(position, record.origin_topic, 0, "origin topic does not match"))
                else:
                    candidates.append(record)
        accepted: list[DeadRecord] = []
        for record in candidates:
            why = refusal(record, ledger, dlq.widths, max_replays)
            if why is None:
                accepted.append(record)
            else:
                report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))
        if dry_run:
            report.outcomes.extend(Outcome(r.position, r.origin_topic, r.replays + 1) for r in accepted)
            return report
        delivered = _produce_back(settings, accepted, dlq.widths, report)
        write_ledger(dlq, delivered)
        if count is not None:
            settled = {r.position for r in delivered} | {
                r.position for r in candidates if r.replays >= max_replays and is_replayed(r, ledger) is None
            }
            _commit_cursor(dlq, starts, scanned, ledger, settled)
        return report
    finally:
        dlq.close()


def _candidates(
    dlq: Reader, ledger: Mapping[str, LedgerEntry], count: int, origin_topic: str | None
) -> tuple[list[DeadRecord], dict[int, list[DeadRecord]], dict[int, int]]:
    """The oldest ``count`` matching records not yet replayed, from the cursor on; and what was scanned."""
    cursor = dlq.cursor()
    scanned: dict[int, list[DeadRecord]] = {}
    found: list[DeadRecord] = []
    for partition in dlq.partitions:
        _, high = dlq.watermarks(dlq.topic, partition)
        taken = 0
        scanned[partition] = []
        for record in dlq.records(partition, cursor[partition], high):
            scanned[partition].append(record)
            if matches(record, origin_topic) and is_replayed(record, ledger) is None:
                found.append(record)
                taken += 1
                if taken >= count:
                    break
    return oldest_first(found, count), scanned, cursor


def _produce_back(
    settings: Settings, records: Sequence[DeadRecord], widths: Mapping[str, int], report: ReplayReport
) -> list[DeadRecord]:
    """Produce each record to its origin topic; return those the broker acknowledged."""
    if not records:
        return []
    producer = Producer(config.producer_conf(settings))
    errors: dict[Position, str] = {}

    def on_delivery(position: Position) -> Any:
        def callback(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors[position] = err.str()

        return callback

    for record in records:
        topic = record.origin_topic
        assert topic is not None  # refusal() let no record without one through
        kwargs: dict[str, Any] = {"headers": replay_headers(record)}
        part = record.state.origin_partition
        if part is not None and part < widths.get(topic, 0):
            kwargs["partition"] = part  # where the producer had put it; the key decides otherwise
        try:
            producer.produce(
                topic,
                key=record.key,
                value=record.value,
                on_delivery=on_delivery(record.position),
                **kwargs,
            )
        except (KafkaException, BufferError) as exc:
            errors[record.position] = str(exc)
        producer.poll(0)
    left = producer.flush(ACK_TIMEOUT)
    if left:
        raise BrokerUnavailable(f"{left} replayed records unacknowledged after {ACK_TIMEOUT:.0f}s; none marked done")
    delivered = []
    for record in records:
        if record.position in errors:
            why = f"produce to {record.origin_topic} failed: {errors[record.position]}"
            report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))
        else:
            delivered.append(record)
            report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays + 1))
    return delivered


def _commit_cursor(
    dlq: Reader,
    starts: Mapping[int, int],
    scanned: Mapping[int, Sequence[DeadRecord]],
    ledger: Mapping[str, LedgerEntry],
    settled_now: set[Position],
) -> None:
    moves = []
    for partition, records in scanned.items():
        flags = [(r.offset, r.position in settled_now or is_replayed(r, ledger) is not None) for r in records]
        new = advance(starts[partition], flags)
        if new > starts[partition]:
            moves.append(TopicPartition(dlq.topic, partition, new))
    if not moves:
        return
    conf = config.consumer_conf(dlq.settings, replay_group(dlq.topic), main=False)
    committer = Consumer({**conf, "enable.auto.commit": False})
    try:
        committer.commit(offsets=moves, asynchronous=False)
    finally:
        committer.close()
