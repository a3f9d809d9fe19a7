"""The one way anything writes for a DLQ: a transaction with the fixed ``transactional.id`` ``kretry-replay.<dlq>``
that marks records in the ledger (and, for a replay, puts them back first) and moves the cursor. Why it never
loses or doubles a record: ``kretry.dlq``'s docstring."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from kretry import config
from kretry.config import Settings
from kretry.dlq._filter import Filter
from kretry.dlq._ledger import ensure_ledger, ledger_entry
from kretry.dlq._plan import Plan, Report, check_selection, select
from kretry.dlq._reader import Reader
from kretry.dlq._records import DeadRecord, Position, ledger_topic, replay_group
from kretry.errors import BrokerUnavailable, ReplayInProgress

TXN_TIMEOUT = 30.0  # seconds for each transactional call
# What a producer whose transactional.id a newer producer took over gets: librdkafka's fatal code, the broker's.
FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})

# Within the open transaction, before the ledger entries: the records whose write failed, with why.
Before = Callable[[Producer, Sequence[DeadRecord]], dict[Position, str]]
# Moves each of plan.candidates to plan.accepted, or refuses it in the report.
Judge = Callable[[Reader, Plan, Report], None]


def write(
    settings: Settings,
    report: Report,
    judge: Judge,
    *,
    count: int | None,
    offsets: Sequence[Position],
    where: Filter,
    before: Callable[[Reader], Before] | None = None,
) -> Report:
    """Select, judge, and (unless ``report.dry_run``) commit what was accepted, fenced."""
    check_selection(count, offsets)
    dlq = Reader(settings)
    try:
        if report.dry_run:
            plan = select(dlq, report, count, offsets, where)
            judge(dlq, plan, report)
            report.accept(plan.accepted)
            return report
        # Fence first, read second: once fence() returns, any older writer of this DLQ is fenced and its open
        # transaction aborted or committed, so the ledger and cursor read next are the last word.
        producer = fence(settings, dlq)
        plan = select(dlq, report, count, offsets, where)
        judge(dlq, plan, report)
        commit(producer, dlq, plan, report, move_cursor=count is not None, before=before and before(dlq))
        return report
    finally:
        dlq.close()


def fence(settings: Settings, dlq: Reader) -> Producer:
    """The DLQ's transactional producer, once every older one is fenced and its open transaction aborted or
    committed: only after this may the ledger and cursor be read as the last word."""
    producer = Producer({**config.producer_conf(settings), "transactional.id": replay_group(dlq.topic)})
    fenced_call(dlq.topic, producer.init_transactions, TXN_TIMEOUT)
    return producer


def commit(
    producer: Producer, dlq: Reader, plan: Plan, report: Report, *, move_cursor: bool, before: Before | None = None
) -> None:
    """One transaction: ``before`` (if any), the ledger entries of ``plan.accepted``, the cursor. A record whose
    ``before`` failed is refused, and the transaction tried again without it."""
    if plan.accepted and ledger_topic(dlq.topic) not in dlq.widths:
        ensure_ledger(dlq.admin, dlq.topic)
    group = dlq.group_consumer(replay_group(dlq.topic))
    try:
        todo = list(plan.accepted)
        while True:
            failed = fenced_call(
                dlq.topic, _transaction, producer, dlq, plan, todo, group, move_cursor, before, report.action
            )
            if not failed:
                report.accept(todo)
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
    producer: Producer,
    dlq: Reader,
    plan: Plan,
    todo: Sequence[DeadRecord],
    group: Any,
    move_cursor: bool,
    before: Before | None,
    action: str,
) -> dict[Position, str]:
    """Commit ``todo``, or abort and return the records whose ``before`` failed, with why."""
    producer.begin_transaction()
    failed = before(producer, todo) if before is not None else {}
    if failed:
        # Raises the fencing error instead when this producer was fenced: that, not the records, is what failed.
        producer.abort_transaction(TXN_TIMEOUT)
        return failed
    now = int(time.time() * 1000)
    for record in todo:
        key, value = ledger_entry(record, now, action)
        producer.produce(ledger_topic(dlq.topic), key=key, value=value)
    if move_cursor:
        moves = plan.cursor_moves(dlq.topic, {r.position for r in todo})
        if moves:
            producer.send_offsets_to_transaction(moves, group.consumer_group_metadata(), TXN_TIMEOUT)
    producer.commit_transaction(TXN_TIMEOUT)
    return {}


def fenced_call(dlq_topic: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, with a fenced producer's error as ReplayInProgress and any other Kafka error as a failed
    write that changed nothing (its transaction, if any, is aborted by the broker or the next writer)."""
    try:
        return call(*args)
    except KafkaException as exc:
        err = exc.args[0]
        code = err.code() if isinstance(err, KafkaError) else None
        if code in FENCED:
            raise ReplayInProgress(f"another replay of {dlq_topic} took over; this one put nothing back") from None
        raise BrokerUnavailable(f"replay of {dlq_topic} failed, nothing was put back: {exc}") from None
