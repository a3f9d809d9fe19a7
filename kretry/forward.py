"""Republishing a record to its next stage or the DLQ, with acknowledged delivery.

``send`` returns at once; ``done`` is called with the delivered record (from ``poll``, in the stage's own thread)
once the broker acknowledged it. Transient failures are sent again; a permanent one is handed to ``fallback``, which
names another record to send instead (a DLQ entry, a smaller stub) or gives up, which is fatal for the stage.

A transactional forwarder (exactly_once) resends nothing: a failed forward leaves its transaction fit only to be
aborted, so the failure is kept in ``broken`` for the stage to abort and handle the batch again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from kretry.headers import Headers

RESEND_BACKOFF = 1.0
UNASSIGNED = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner chooses

# Errors no resend can cure: the record or its topic is wrong for the broker, or we may not write there.
PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError._INVALID_ARG,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_REQUIRED_ACKS,
    }
)


class Outgoing(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None  # None: let the key choose


Fallback = Callable[[Outgoing, KafkaError], "Outgoing | None"]
Done = Callable[[Any], None]  # called with the record as delivered: its topic, partition and offset


class ForwardFailed(Exception):
    """A record could be delivered neither where it was going nor anywhere instead."""

    def __init__(self, outgoing: Outgoing, error: KafkaError) -> None:
        super().__init__(f"could not deliver to {outgoing.topic}: {error.str()}")
        self.outgoing = outgoing
        self.error = error


class _Sent:
    """A record on its way, until its delivery report. One small object, not a closure: a closure's cells are as many
    objects again for the garbage collector to walk, and thousands of forwards are in flight at a time."""

    __slots__ = ("done", "forwarder", "generation", "out")

    def __init__(self, forwarder: Forwarder, out: Outgoing, done: Done) -> None:
        self.forwarder, self.out, self.done, self.generation = forwarder, out, done, forwarder._generation

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        forwarder = self.forwarder
        if self.generation != forwarder._generation:
            return  # its transaction was aborted: the record is handled again, and sent again
        if err is None:
            self.done(msg)
        else:
            forwarder._failed(self.out, err, self.done)


class Forwarder:
    def __init__(
        self,
        producer: Producer,
        fallback: Fallback,
        on_failure: Callable[[Outgoing, KafkaError], None],
        partitions: dict[str, int] | None = None,
        *,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._producer = producer
        self._before_send = before_send  # exactly_once: begins the transaction before its first record
        self._generation = 0  # acknowledgements of records sent before the last discard() are ignored
        self.broken: KafkaError | None = None
        self._fallback = fallback
        self._on_failure = on_failure
        self._partitions = partitions or {}
        self._resend: list[tuple[float, Outgoing, Done]] = []
        self.fatal: ForwardFailed | None = None

    def _partition_for(self, out: Outgoing) -> int | None:
        """The source's partition number when the target has it (Spring's choice too), else the key decides."""
        if out.partition is None:
            return None
        width = self._partitions.get(out.topic)
        return out.partition if width is not None and out.partition < width else None

    def send(self, out: Outgoing, done: Done) -> None:
        on_delivery = _Sent(self, out, done)
        if self._before_send is not None:
            self._before_send()
        partition = self._partition_for(out)
        while True:
            try:
                self._producer.produce(
                    out.topic,
                    out.value,
                    out.key,
                    partition=UNASSIGNED if partition is None else partition,
                    on_delivery=on_delivery,
                    headers=out.headers,  # type: ignore[arg-type]  # the stub's list type is invariant
                )
                return
            except BufferError:
                # The local queue is full: serve acknowledgements until there is room, never drop.
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._failed(out, exc.args[0], done)
                return

    def _failed(self, out: Outgoing, err: KafkaError, done: Done) -> None:
        self._on_failure(out, err)
        if self._before_send is not None:
            # No client call here: a fenced producer runs this callback with its error already raised.
            self.broken = self.broken or err
            return
        if err.code() not in PERMANENT and not err.fatal():
            self._resend.append((time.monotonic() + RESEND_BACKOFF, out, done))
            return
        instead = self._fallback(out, err)
        if instead is None:
            self.fatal = ForwardFailed(out, err)
        else:
            self.send(instead, done)

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        if self._resend:
            now = time.monotonic()
            due = [r for r in self._resend if r[0] <= now]
            self._resend = [r for r in self._resend if r[0] > now]
            for _, out, done in due:
                self.send(out, done)

    def discard(self) -> None:
        """Forget every record sent so far (its transaction was aborted): no resend, no acknowledgement."""
        self._generation += 1
        self._resend = []
        self.broken = None

    def flush(self, timeout: float) -> int:
        """Wait for acknowledgements (and resends) up to ``timeout``; return how many are still unacknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = self._producer.flush(max(0.0, min(deadline - time.monotonic(), 0.5)))
            self.poll()
            left = remaining + len(self._resend)
            if left == 0 or time.monotonic() >= deadline:
                return left
            if not remaining:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
