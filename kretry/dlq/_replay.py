"""``kretry dlq replay``: put DLQ records back on their origin topic, in one transaction with their ledger entries
and the cursor move. Why no record is lost or replayed twice: ``kretry.dlq``'s docstring."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from kretry import config
from kretry.config import Settings
from kretry.dlq._ledger import ensure_ledger, ledger_entry, read_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import (
    DEFAULT_MAX_REPLAYS,
    DeadRecord,
    LedgerEntry,
    Position,
    advance,
    format_position,
    is_replayed,
    ledger_topic,
    matches,
    oldest_first,
    refusal,
    replay_group,
    replay_headers,
)
from kretry.errors import BrokerUnavailable, ReplayInProgress

TXN_TIMEOUT = 30.0  # seconds for each transactional call
# What a producer whose transactional.id a newer producer took over gets: librdkafka's fatal code, the broker's.
FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})


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

    def refuse(self, record: DeadRecord, why: str) -> None:
        self.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))

    def put_back(self, records: Sequence[DeadRecord]) -> None:
        self.outcomes.extend(Outcome(r.position, r.origin_topic, r.replays + 1) for r in records)


@dataclass
class _Plan:
    """What one replay found: the records to put back, and what the cursor may pass."""

    accepted: list[DeadRecord]
    ledger: dict[str, LedgerEntry]
    scanned: dict[int, list[DeadRecord]] = field(default_factory=dict)  # by partition, from the cursor on
    starts: dict[int, int] = field(default_factory=dict)  # the cursor as read
    settled: set[Position] = field(default_factory=set)  # refused for good: the cursor may pass them


def replay(
    settings: Settings,
    *,
    count: int | None = None,
    offsets: Sequence[Position] = (),
    origin_topic: str | None = None,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    dry_run: bool = False,
    group: str | None = None,
) -> ReplayReport:
    """Put DLQ records back on their origin topic: the oldest ``count`` not yet replayed, or those at ``offsets``;
    only those that failed on ``origin_topic`` and that ``group``'s retry path dead-lettered, when given.

    Raises ReplayInProgress when another replay of the same DLQ started meanwhile; this one then put nothing back.
    """
    if (count is None) == (not offsets):
        raise ValueError("give either count or offsets")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    if max_replays < 0:
        raise ValueError("max_replays must be >= 0")
    dlq = Reader(settings)
    try:
        report = ReplayReport(dry_run)
        if dry_run:
            report.put_back(_plan(dlq, report, count, offsets, (origin_topic, group), max_replays).accepted)
            return report
        # Fence first, read second: once init_transactions() returns, any older replayer of this DLQ is fenced
        # and its open transaction aborted or committed, so the ledger and cursor read next are the last word.
        producer = Producer({**config.producer_conf(settings), "transactional.id": replay_group(dlq.topic)})
        _fenced_call(dlq.topic, producer.init_transactions, TXN_TIMEOUT)
        plan = _plan(dlq, report, count, offsets, (origin_topic, group), max_replays)
        _put_back(producer, dlq, plan, report, move_cursor=count is not None)
        return report
    finally:
        dlq.close()


def _plan(
    dlq: Reader,
    report: ReplayReport,
    count: int | None,
    offsets: Sequence[Position],
    only: tuple[str | None, str | None],
    max_replays: int,
) -> _Plan:
    """``only``: the origin topic and the group to replay records of (None: any)."""
    origin_topic, group = only
    ledger = read_ledger(dlq)
    plan = _Plan([], ledger)
    if count is not None:
        candidates = _candidates(dlq, plan, count, only)
    else:
        candidates = []
        for position in dict.fromkeys(offsets):
            record = dlq.record_at(position)
            if record is None:
                report.outcomes.append(Outcome(position, None, 0, f"no record at {format_position(position)}"))
            elif not matches(record, origin_topic):
                report.outcomes.append(Outcome(position, record.origin_topic, 0, "origin topic does not match"))
            elif not matches(record, group=group):
                why = f"kretry-group {record.state.group!r} is not {group!r}"
                report.outcomes.append(Outcome(position, record.origin_topic, 0, why))
            else:
                candidates.append(record)
    _judge(dlq, plan, report, candidates, max_replays)
    return plan


def _judge(dlq: Reader, plan: _Plan, report: ReplayReport, candidates: Sequence[DeadRecord], max_replays: int) -> None:
    """Accept each candidate, a stub as the original it stands for, or refuse it."""
    for record in candidates:
        why = refusal(record, plan.ledger, dlq.widths, max_replays, dlq_topic=dlq.topic)
        if why is None and record.left_out is not None:
            # Put back as it is, a stub would be a tombstone: on a compacted topic, the original's key deleted.
            original = dlq.original(record)
            if isinstance(original, str):
                why = original
            else:
                record = original
        if why is None:
            plan.accepted.append(record)
            continue
        report.refuse(record, why)
        if record.replays >= max_replays and is_replayed(record, plan.ledger) is None:
            plan.settled.add(record.position)


def _candidates(dlq: Reader, plan: _Plan, count: int, only: tuple[str | None, str | None]) -> list[DeadRecord]:
    """The oldest ``count`` matching records not yet replayed, from the cursor on; ``plan`` learns what was scanned."""
    plan.starts = dlq.cursor()
    found: list[DeadRecord] = []
    for partition in dlq.partitions:
        _, high = dlq.watermarks(dlq.topic, partition)
        taken = 0
        plan.scanned[partition] = []
        for record in dlq.records(partition, plan.starts[partition], high):
            plan.scanned[partition].append(record)
            if matches(record, only[0], group=only[1]) and is_replayed(record, plan.ledger) is None:
                found.append(record)
                taken += 1
                if taken >= count:
                    break
    return oldest_first(found, count)


def _put_back(producer: Producer, dlq: Reader, plan: _Plan, report: ReplayReport, *, move_cursor: bool) -> None:
    """One transaction: the records, their ledger entries, the cursor. A record its topic refuses is left out, and
    the transaction tried again without it."""
    if plan.accepted and ledger_topic(dlq.topic) not in dlq.widths:
        ensure_ledger(dlq.admin, dlq.topic)
    group = dlq.group_consumer(replay_group(dlq.topic))
    try:
        todo = list(plan.accepted)
        while True:
            failed = _fenced_call(dlq.topic, _transaction, producer, dlq, plan, todo, group, move_cursor)
            if not failed:
                report.put_back(todo)
                return
            for record in todo:
                if record.position in failed:
                    report.refuse(record, f"produce to {record.origin_topic} failed: {failed[record.position]}")
            todo = [r for r in todo if r.position not in failed]
    except BrokerUnavailable:
        # Left open, the transaction would hold back every read_committed consumer of the origin topics until
        # it times out.
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(TXN_TIMEOUT)
        raise
    finally:
        group.close()


def _transaction(
    producer: Producer, dlq: Reader, plan: _Plan, todo: Sequence[DeadRecord], group: Any, move_cursor: bool
) -> dict[Position, str]:
    """Commit ``todo``, or abort and return the records whose produce failed, with why."""
    producer.begin_transaction()
    failed = _produce(producer, todo, dlq.widths)
    if failed:
        # Raises the fencing error instead when this producer was fenced: that, not the records, is what failed.
        producer.abort_transaction(TXN_TIMEOUT)
        return failed
    now = int(time.time() * 1000)
    for record in todo:
        key, value = ledger_entry(record, now)
        producer.produce(ledger_topic(dlq.topic), key=key, value=value)
    if move_cursor:
        moves = _cursor_moves(dlq.topic, plan, {r.position for r in todo})
        if moves:
            producer.send_offsets_to_transaction(moves, group.consumer_group_metadata(), TXN_TIMEOUT)
    producer.commit_transaction(TXN_TIMEOUT)
    return {}


def _produce(producer: Producer, records: Sequence[DeadRecord], widths: Mapping[str, int]) -> dict[Position, str]:
    """Produce each record to its origin topic and wait for every acknowledgement; the failures, with why."""
    errors: dict[Position, KafkaError | str] = {}

    def on_delivery(position: Position) -> Any:
        def callback(err: KafkaError | None, _msg: Any) -> None:
            # No method call here: once the producer is fenced, flush() runs this with its KafkaException already
            # raised, and any call into the client library would turn that into a SystemError.
            if err is not None:
                errors[position] = err

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
                topic, key=record.key, value=record.value, on_delivery=on_delivery(record.position), **kwargs
            )
        except BufferError as exc:
            errors[record.position] = str(exc)
        producer.poll(0)
    left = producer.flush(TXN_TIMEOUT)
    if left:
        raise BrokerUnavailable(f"{left} replayed records unacknowledged after {TXN_TIMEOUT:.0f}s; none marked done")
    return {position: err if isinstance(err, str) else err.str() for position, err in errors.items()}


def _cursor_moves(topic: str, plan: _Plan, put_back: set[Position]) -> list[TopicPartition]:
    settled = plan.settled | put_back
    moves = []
    for partition, records in plan.scanned.items():
        flags = [(r.offset, r.position in settled or is_replayed(r, plan.ledger) is not None) for r in records]
        new = advance(plan.starts[partition], flags)
        if new > plan.starts[partition]:
            moves.append(TopicPartition(topic, partition, new))
    return moves


def _fenced_call(dlq_topic: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, with a fenced producer's error as ReplayInProgress and any other Kafka error as a failed
    replay that put nothing back (its transaction, if any, is aborted by the broker or the next replayer)."""
    try:
        return call(*args)
    except KafkaException as exc:
        err = exc.args[0]
        code = err.code() if isinstance(err, KafkaError) else None
        if code in FENCED:
            raise ReplayInProgress(f"another replay of {dlq_topic} took over; this one put nothing back") from None
        raise BrokerUnavailable(f"replay of {dlq_topic} failed, nothing was put back: {exc}") from None
