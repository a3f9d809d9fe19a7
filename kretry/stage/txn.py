"""The transactional step of an exactly-once stage: a turn's forwards and the offsets they settle, in one transaction.

The transaction begins before the turn's first forward (or at its end, when only offsets moved); at the end of the
turn every forward is flushed, the trackers' done-prefix offsets go into it with the consumer's group metadata, and
it is committed. A read_committed reader then sees a forwarded copy exactly when the offset past its source is
committed: a kill -9 or a failed commit leaves neither, and the records are handled again (the handler runs again;
its side effects are at-least-once, kretry's copies are not duplicated).

Failures: an abortable one aborts, and the stage seeks every partition back to its last committed offset; a fenced
producer (a newer worker took over its transactional.id, or the group moved on) stops the stage with
TransactionFenced; a broker without usable transactions fails the start-up with what to set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kretry.errors import BrokerUnavailable, KafkaFatalError, TransactionFenced
from kretry.offsets import PartitionOffsets

TXN_TIMEOUT = 30.0  # seconds for each transactional call
FLUSH_TIMEOUT = 30.0  # seconds for a turn's forwards to be acknowledged before its transaction is aborted
# A killed worker's open transaction holds up read_committed readers of its partitions at most this long, when no
# worker with its transactional.id starts in its place meanwhile (which aborts it at once).
TRANSACTION_TIMEOUT_MS = 10_000
MAX_ABORTS = 10  # transactions aborted in a row before the stage gives up (a forward no retry can cure)
COMMIT_TRIES = 3  # commit_transaction() is called again after a retriable error (a timeout), then aborted
# What a producer whose transactional.id a newer producer took over gets: librdkafka's fatal code, the broker's.
FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})


class Aborted(Exception):
    """The turn's transaction was aborted: nothing it forwarded is visible, no offset moved."""


def translate(err: KafkaError, transactional_id: str) -> Exception | None:
    """The stage-stopping exception for a fenced or fatal error; None for one the stage survives by aborting."""
    if err.code() in FENCED:
        return TransactionFenced(
            f"{transactional_id}: fenced by a newer producer with the same transactional.id "
            f"(a worker started in this one's place, or with the same KRETRY_INSTANCE_ID): {err.str()}"
        )
    if err.fatal():
        return KafkaFatalError(f"{transactional_id}: {err.str()}")
    return None


def producer(conf: dict[str, Any], transactional_id: str, timeout: float) -> Producer:
    """A transactional producer, its predecessor (the same id) fenced and its open transaction aborted."""
    conf = {**conf, "transactional.id": transactional_id}
    conf.setdefault("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
    client = Producer(conf)
    try:
        client.init_transactions(timeout)
    except KafkaException as exc:
        err = exc.args[0]
        raise BrokerUnavailable(
            f"exactly_once: the cluster refused transactions for {transactional_id} ({err.str()}). The brokers need "
            "transaction support (Kafka >= 2.5) and a transaction state log they can create: "
            "transaction.state.log.replication.factor and transaction.state.log.min.isr at most the number of "
            "brokers (1 and 1 on a single broker); transaction.timeout.ms at most the brokers' "
            "transaction.max.timeout.ms. Or run without KRETRY_EXACTLY_ONCE."
        ) from None
    return client


class Transactions:
    """One stage's transactions: at most one open, begun lazily, committed or aborted at the end of a turn."""

    def __init__(self, client: Producer, transactional_id: str) -> None:
        self.client = client
        self.id = transactional_id
        self.open = False
        self.aborts_in_row = 0
        self.committed = 0
        self.aborted = 0

    def _call(self, call: Callable[..., Any], *args: Any) -> None:
        """``call(*args)``; a fenced or fatal error as the exception that stops the stage."""
        try:
            call(*args)
        except KafkaException as exc:
            stop = translate(exc.args[0], self.id)
            if stop is not None:
                raise stop from None
            raise

    def begin(self) -> None:
        if not self.open:
            self._call(self.client.begin_transaction)
            self.open = True

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Commit the open transaction (begun here when only offsets moved) with ``offsets``; raise Aborted after
        aborting it when the broker refused it."""
        self.begin()
        try:
            if offsets:
                self._call(self.client.send_offsets_to_transaction, offsets, group_metadata, TXN_TIMEOUT)
            for attempt in range(COMMIT_TRIES):
                try:
                    self._call(self.client.commit_transaction, TXN_TIMEOUT)
                    break
                except KafkaException as exc:
                    err = exc.args[0]
                    if not err.retriable() or err.txn_requires_abort() or attempt == COMMIT_TRIES - 1:
                        raise
        except KafkaException as exc:
            self.abort(exc.args[0].str())
            raise Aborted(exc.args[0].str()) from None
        self.open = False
        self.aborts_in_row = 0
        self.committed += 1

    def abort(self, reason: str) -> None:
        """Abort the open transaction, if any; past MAX_ABORTS in a row the stage stops."""
        if self.open:
            self._call(self.client.abort_transaction, TXN_TIMEOUT)
            self.open = False
        self.aborted += 1
        self.aborts_in_row += 1
        if self.aborts_in_row > MAX_ABORTS:
            raise KafkaFatalError(f"{self.id}: {MAX_ABORTS} transactions aborted in a row, the last: {reason}")


def ready_offsets(topic: str, trackers: dict[int, PartitionOffsets]) -> list[TopicPartition]:
    """The offsets that moved since the last commit: one past each partition's done prefix."""
    return [TopicPartition(topic, p, t.next) for p, t in sorted(trackers.items()) if t.dirty and t.next is not None]


def rewind(
    consumer: Consumer, topic: str, partitions: Iterable[int], known: dict[int, int], earliest: bool
) -> dict[int, int]:
    """Seek each partition back to its last committed offset (``known``, else the group's, else the reset policy's
    end); return where each went."""
    parts = sorted(partitions)
    unknown = [p for p in parts if p not in known]
    if unknown:
        with contextlib.suppress(KafkaException):
            for tp in consumer.committed([TopicPartition(topic, p) for p in unknown], timeout=10.0):
                if tp.offset >= 0:
                    known[tp.partition] = tp.offset
    where = {}
    for p in parts:
        offset = known.get(p, OFFSET_BEGINNING if earliest else OFFSET_END)
        # A partition revoked meanwhile cannot be sought; its next owner starts from the last commit anyway.
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, p, offset))
        where[p] = offset
    return where
