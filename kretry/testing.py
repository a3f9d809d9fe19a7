"""Testing handlers without a broker: the Message a handler sees, what a failure leads to, a whole retry ladder.

In the spirit of dramatiq's StubBroker, FastStream's TestKafkaBroker and Celery's eager mode, everything here runs
in memory, through the same code a stage runs (deserializers, local retries, the pure ``policy.decide``), and never
waits: delays are reported, not slept. Jitter is left out: a delay is its tier's nominal one.

- ``message(retrier, "orders", value=b"...")``: a ``Message`` as the handler of ``orders`` would see it.
- ``outcome(retrier, "orders", TimeoutError(), attempt=0)``: where that failure sends the record.
- ``run_ladder(retrier, "orders", value=b"...")``: the handler at attempt 0, 1, ... until it succeeds or the record
  leaves the retry path; every try and the record's fate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kretry import headers as hdr
from kretry.dispatch import Dispatcher, build_message
from kretry.errors import ConfigError
from kretry.message import Message
from kretry.policy import Action, Decision, decide
from kretry.retrier import HandlerSpec, Retrier
from kretry.serde import DeserializationError
from kretry.topology import retry_topic

__all__ = ["Ladder", "Outcome", "Record", "Try", "message", "outcome", "run_ladder"]

Fate = Literal["succeeded", "retried", "dead_lettered", "dropped", "stopped"]
_FATES: dict[Action, Fate] = {
    Action.RETRY: "retried",
    Action.DEAD_LETTER: "dead_lettered",
    Action.DROP: "dropped",
    Action.STOP: "stopped",
}
_NO_JITTER = 0.5  # the draw that moves a delay neither way


class Record:
    """A stand-in for the ``confluent_kafka.Message`` a stage reads: the accessors kretry uses."""

    def __init__(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: hdr.Headers | None = None,
        partition: int = 0,
        offset: int = 0,
        timestamp: int = 0,
    ) -> None:
        self._topic, self._value, self._key, self._headers = topic, value, key, headers
        self._partition, self._offset, self._timestamp = partition, offset, timestamp

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> hdr.Headers | None:
        return self._headers or None  # as confluent_kafka says "no headers"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp  # TIMESTAMP_CREATE_TIME

    def error(self) -> None:
        return None


def _bytes(data: bytes | str | None) -> bytes | None:
    return data.encode("utf-8") if isinstance(data, str) else data


def _spec(handler: HandlerSpec | Retrier, topic: str | None) -> HandlerSpec:
    if isinstance(handler, HandlerSpec):
        return handler
    spec = handler.handlers.get(topic or "")
    if spec is None:
        raise ConfigError(f"no handler registered for topic {topic!r}; registered: {sorted(handler.handlers)}")
    return spec


def _stage_topic(spec: HandlerSpec, attempt: int) -> str:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= spec.policy.retries:
        raise ConfigError(f"handler {spec.topic!r}: attempt must be from 0 to {spec.policy.retries}, got {attempt!r}")
    return spec.attempt_topics[attempt]


@dataclass(frozen=True)
class _Input:
    """The record as produced to the main topic."""

    origin_topic: str
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers
    partition: int
    offset: int
    timestamp: int
    replays: int

    def at(self, topic: str, attempt: int, *, group: str = "", error: str = "", waited: float = 0.0) -> Record:
        """The record as the stage of ``attempt`` reads it from ``topic``, with the kretry headers the stage before
        it wrote, due once it ``waited`` seconds. On a retry topic it is at offset 0 of the same partition."""
        headers = list(self.headers)
        if attempt == 0:
            if self.replays:
                headers.append((hdr.REPLAYS, b"%d" % self.replays))
            return Record(topic, self.value, self.key, headers, self.partition, self.offset, self.timestamp)
        due = self.timestamp + int(waited * 1000)
        origin = hdr.Origin(self.origin_topic, self.partition, self.offset, self.timestamp)
        headers = hdr.build(
            headers, origin=origin, attempt=attempt, error=error, group=group, due_at=due, replays=self.replays
        )
        return Record(topic, self.value, self.key, headers, self.partition, 0, due)


def _input(
    topic: str,
    key: bytes | str | None,
    value: bytes | str | None,
    headers: Sequence[tuple[str, bytes]],
    partition: int,
    offset: int,
    timestamp: int | None,
    replays: int,
) -> _Input:
    stamp = int(time.time() * 1000) if timestamp is None else timestamp
    return _Input(topic, _bytes(key), _bytes(value), list(headers), partition, offset, stamp, replays)


def message(
    handler: HandlerSpec | Retrier | None = None,
    topic: str | None = None,
    *,
    key: bytes | str | None = None,
    value: bytes | str | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    attempt: int = 0,
    partition: int = 0,
    offset: int = 0,
    timestamp: int | None = None,
    replays: int = 0,
) -> Message:
    """The ``Message`` the handler of ``topic`` sees at ``attempt``, decoded by its own deserializers.

    ``handler`` is a Retrier (with ``topic``) or a registered ``HandlerSpec`` (``retrier.handlers["orders"]``);
    without one, ``topic`` alone and no decoding. ``key`` and ``value`` are bytes (str is taken as UTF-8);
    ``partition``/``offset`` are the record's on the main topic, its origin on a retry topic. Raises
    ``DeserializationError`` where the stage would dead-letter the record for it.
    """
    if handler is None:
        if topic is None:
            raise ConfigError("message(): pass handler= (a Retrier with topic=, or a registered spec) or topic=")
        record = _input(topic, key, value, headers, partition, offset, timestamp, replays)
        stage = topic if attempt == 0 else retry_topic(topic, attempt)
        return Message(record.at(stage, attempt), attempt, topic)
    spec = _spec(handler, topic)
    record = _input(spec.topic, key, value, headers, partition, offset, timestamp, replays)
    return build_message(spec, attempt, record.at(_stage_topic(spec, attempt), attempt))


@dataclass(frozen=True)
class Outcome:
    """Where a failure sends a record: ``fate`` "retried" (to ``topic``, at attempt ``tier``, due in ``delay`` seconds),
    "dead_lettered" (to the DLQ ``topic``), "dropped" or "stopped"; ``reason`` why it left the retry path
    ("exhausted", "non-retryable", "deserialization", "max-age"; "" when retried)."""

    fate: Fate
    topic: str | None
    tier: int
    delay: float
    reason: str


def _outcome(spec: HandlerSpec, dlq_topic: str | None, decision: Decision) -> Outcome:
    fate = _FATES[decision.action]
    topic = {"retried": spec.attempt_topics[decision.tier], "dead_lettered": dlq_topic}.get(fate)
    return Outcome(fate, topic, decision.tier, decision.delay, decision.reason)


def outcome(retrier: Retrier, topic: str, exc: BaseException, attempt: int = 0, *, age: float = 0.0) -> Outcome:
    """What ``exc``, raised by the handler of ``topic`` at ``attempt`` (after its local retries), leads to;
    ``age``: seconds since the record was first produced, for ``max_age``."""
    spec = _spec(retrier, topic)
    _stage_topic(spec, attempt)
    decision = decide(spec.policy, attempt, exc, age=age, rand=lambda: _NO_JITTER)
    return _outcome(spec, retrier.dlq_topic, decision)


@dataclass(frozen=True)
class Try:
    """One call of the handler: on ``topic`` at ``attempt``, its ``local``-th retry in place (0: the first call);
    ``error`` None when it succeeded; ``delay`` seconds until the next call (0 after the last)."""

    topic: str
    attempt: int
    local: int
    error: BaseException | None
    delay: float


@dataclass(frozen=True)
class Ladder:
    """Every try of a record, in order, and its fate: "succeeded" (on ``topic``), "dead_lettered" (``topic`` is
    the DLQ), "dropped" or "stopped"; ``reason`` as in ``Outcome``. A record a deserializer refuses has one try,
    its ``DeserializationError``: the handler is not called."""

    tries: tuple[Try, ...]
    fate: Fate
    topic: str | None
    reason: str

    @property
    def waited(self) -> float:
        """Seconds the record would have spent waiting between tries."""
        return sum(t.delay for t in self.tries)


def _tries_at(
    dispatcher: Dispatcher, spec: HandlerSpec, attempt: int, record: Record
) -> tuple[list[Try], BaseException | None]:
    """The calls of one stage, local retries included; the last one's delay is left for the policy to decide."""
    try:
        msg = build_message(spec, attempt, record)
    except DeserializationError as exc:
        return [Try(record.topic(), attempt, 0, exc, 0.0)], exc
    tries: list[Try] = []
    failure = dispatcher.try_once(msg)
    while failure is not None and dispatcher.again(len(tries), failure):
        tries.append(Try(record.topic(), attempt, len(tries), failure, spec.local_backoff))
        failure = dispatcher.try_once(msg)
    tries.append(Try(record.topic(), attempt, len(tries), failure, 0.0))
    return tries, failure


def run_ladder(
    retrier: Retrier,
    topic: str,
    *,
    key: bytes | str | None = None,
    value: bytes | str | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    partition: int = 0,
    offset: int = 0,
    replays: int = 0,
) -> Ladder:
    """Run the handler of ``topic`` on one record through its whole retry ladder, in memory, without waiting.

    ``async def`` handlers run on an event loop of their own: call this from a plain (not async) test. The record's
    age, for ``max_age``, is the delays it would have waited.
    """
    spec = _spec(retrier, topic)
    record = _input(spec.topic, key, value, headers, partition, offset, None, replays)
    dispatcher = Dispatcher(spec, 0, threading.Event(), lambda _seconds: None)
    tries: list[Try] = []
    attempt, error, waited = 0, "", 0.0
    topics = spec.attempt_topics
    try:
        while True:
            here = record.at(topics[attempt], attempt, group=retrier.group_id, error=error, waited=waited)
            stage, failure = _tries_at(dispatcher, spec, attempt, here)
            waited += sum(t.delay for t in stage)
            if failure is None:
                return Ladder((*tries, *stage), "succeeded", here.topic(), "")
            decision = decide(spec.policy, attempt, failure, age=waited, rand=lambda: _NO_JITTER)
            last = stage[-1]
            tries += [*stage[:-1], Try(last.topic, last.attempt, last.local, failure, decision.delay)]
            if decision.action is not Action.RETRY:
                fate = _outcome(spec, retrier.dlq_topic, decision)
                return Ladder(tuple(tries), fate.fate, fate.topic, fate.reason)
            attempt, error, waited = decision.tier, hdr.describe_error(failure), waited + decision.delay
    finally:
        dispatcher.close()
