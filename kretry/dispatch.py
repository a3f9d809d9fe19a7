"""Calling a handler: decode the value, call, retry in place a bounded number of times.

Returns the exception that ended the last try, or None on success; what happens to a failed record is the
stage's business. ``async def`` handlers run on an event loop of the stage's own thread, a batch at a time,
at most ``concurrency`` at once, in *lanes*: the records of one lane (one key of a partition, by default) one after
another in offset order, local retries included, different lanes at once (Confluent Parallel Consumer's key order).

Whatever a handler raises, ``SystemExit`` and ``CancelledError`` included, is its record's failure: a stage thread
gets no signals, so nothing but the handler can raise them there, and the worker stops only through its stop
Event. Whatever awaitable a handler returns (a sync wrapper around an ``async def``) is awaited: its outcome is
the record's, never a success without the body having run.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any

from kretry.errors import RetryLater
from kretry.headers import describe_error
from kretry.message import Message
from kretry.metrics import Buckets
from kretry.policy import classify
from kretry.retrier import HandlerSpec, Ordering
from kretry.serde import DeserializationError

# How often (seconds of handling) a sync batch looks whether a stop was asked for: every record would cost more than
# the rest of the per-record loop on the main path.
STOP_CHECK = 0.01


async def _settled(awaitable: Awaitable[Any]) -> BaseException | None:
    """The awaitable's failure, or None; raising nothing, so that no exception escapes into the event loop."""
    try:
        await awaitable
    except BaseException as exc:
        return exc
    return None


def lanes(raws: Sequence[Any], ordering: Ordering) -> list[list[int]]:
    """The batch's indices in lanes, each in batch order (a partition's records come in offset order).

    "key": one lane per key of a partition, and one per record without a key; "partition": one per partition;
    "none": one per record.
    """
    if ordering == "none":
        return [[i] for i in range(len(raws))]
    found: dict[Any, list[int]] = {}
    for i, raw in enumerate(raws):
        if ordering == "partition":
            lane: Any = raw.partition()
        else:
            key = raw.key()
            lane = (raw.partition(), key) if key is not None else (None, i)
        found.setdefault(lane, []).append(i)
    return list(found.values())


def build_message(spec: HandlerSpec, attempt: int, raw: Any) -> Message:
    """The Message the handler sees, decoded by its deserializers; DeserializationError when one raises."""
    try:
        value = raw.value() if spec.value_deserializer is None else spec.value_deserializer(raw.value())
    except BaseException as exc:
        raise DeserializationError(f"deserialization: {describe_error(exc)}") from exc
    if spec.key_deserializer is None:
        return Message(raw, attempt, spec.topic, value)
    try:
        key = spec.key_deserializer(raw.key())
    except BaseException as exc:
        raise DeserializationError(f"key deserialization: {describe_error(exc)}") from exc
    return Message(raw, attempt, spec.topic, value, key)


class Dispatcher:
    def __init__(
        self,
        spec: HandlerSpec,
        attempt: int,
        stopping: threading.Event,
        observe: Callable[[float], None] | Buckets,
        attempt_of: Callable[[Any], int] | None = None,
    ) -> None:
        self.spec = spec
        # Seconds spent in the handler, every try of a record together; a histogram's buckets are counted into
        # straight from run()'s loop.
        self._buckets = observe if isinstance(observe, Buckets) else None
        self._observe = observe.observe if isinstance(observe, Buckets) else observe
        self.attempt = attempt
        # A shared tier's records are at different attempts: each one's is read from the record itself.
        self._attempt_of = attempt_of
        self._stopping = stopping
        self._batched = spec.is_async
        self._plain = spec.value_deserializer is None and spec.key_deserializer is None
        # Made on first need: a sync handler's loop only when it returns an awaitable.
        self._loop: asyncio.AbstractEventLoop | None = None

    def message(self, raw: Any) -> Message:
        return build_message(self.spec, self._attempt(raw), raw)

    def _attempt(self, raw: Any) -> int:
        return self.attempt if self._attempt_of is None else self._attempt_of(raw)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def again(self, tries: int, exc: BaseException) -> bool:
        """Retry in place: tries left, a failure worth retrying, and no stop requested."""
        return (
            tries < self.spec.local_retries
            and not isinstance(exc, RetryLater)
            and classify(self.spec.policy, exc) is None
            and not self._stopping.is_set()
        )

    def try_once(self, msg: Message) -> BaseException | None:
        """One call of the handler from a sync stage."""
        try:
            result = self.spec.func(msg)
        except BaseException as exc:
            return exc
        if result is not None and inspect.isawaitable(result):
            return self._event_loop().run_until_complete(_settled(result))
        return None

    async def _try_async(self, msg: Message) -> BaseException | None:
        """One call of the handler on the batch's event loop."""
        try:
            result = self.spec.func(msg)
        except BaseException as exc:
            return exc
        if result is not None and inspect.isawaitable(result):
            return await _settled(result)
        return None

    def call(self, raw: Any) -> BaseException | None:
        # The per-record path of every sync stage: the common case (no deserializer, no local retries) first.
        spec = self.spec
        try:
            msg = Message(raw, self._attempt(raw), spec.topic) if self._plain else self.message(raw)
        except DeserializationError as exc:
            return exc
        started = perf_counter()
        outcome = self.try_once(msg)
        tries = 0
        while outcome is not None and spec.local_retries and self.again(tries, outcome):
            tries += 1
            time.sleep(spec.local_backoff)  # bounded at registration: local_retries x local_backoff
            outcome = self.try_once(msg)
        self._observe(perf_counter() - started)
        return outcome

    def run(self, raws: Sequence[Any], start: int, deadline: float) -> tuple[int, BaseException | None]:
        """A sync stage's records from ``start`` on, in turn, until one fails, a call ends past ``deadline`` (a
        perf_counter() time: the poll budget is spent) or a stop is asked for: ``(i, failure)``. ``raws[start:i]``
        succeeded; ``raws[i]`` failed with ``failure``, or, with None and ``i < len(raws)``, is left unhandled (called
        or not, nothing is to be done with it: the rest of the batch is left for the partitions' owner)."""
        spec, buckets = self.spec, self._buckets
        if buckets is None or not self._plain or spec.local_retries or self._attempt_of is not None:
            return self._run_each(raws, start, deadline)
        # The main path's loop: one Message, two clock reads and a bucket count a record; everything else once.
        func, topic, attempt, stopping = spec.func, spec.topic, self.attempt, self._stopping
        counts, bounds = buckets.counts, buckets.bounds
        spent = 0.0
        n = len(raws)
        now = perf_counter()
        if now > deadline:
            return start, None
        look = now + STOP_CHECK
        try:
            for i in range(start, n):
                msg = Message(raws[i], attempt, topic)
                started = perf_counter()
                try:
                    result = func(msg)
                except BaseException as exc:
                    outcome: BaseException | None = exc
                else:
                    outcome = None
                    if result is not None and inspect.isawaitable(result):
                        outcome = self._event_loop().run_until_complete(_settled(result))
                ended = perf_counter()
                took = ended - started
                counts[bisect_left(bounds, took)] += 1
                spent += took
                if ended > deadline:
                    return i, None
                if outcome is not None:
                    return i, outcome
                if ended > look:
                    if stopping.is_set():
                        return i + 1, None
                    look = ended + STOP_CHECK
            return n, None
        finally:
            buckets.sum += spent

    def _run_each(self, raws: Sequence[Any], start: int, deadline: float) -> tuple[int, BaseException | None]:
        """run(), a record at a time through call(): deserializers, local retries, a shared tier's attempts."""
        for i in range(start, len(raws)):
            if perf_counter() > deadline or self._stopping.is_set():
                return i, None
            outcome = self.call(raws[i])
            if perf_counter() > deadline:
                return i, None
            if outcome is not None:
                return i, outcome
        return len(raws), None

    async def _call_async(self, raw: Any, gate: asyncio.Semaphore) -> BaseException | None:
        try:
            msg = self.message(raw)
        except DeserializationError as exc:
            return exc
        async with gate:
            started = perf_counter()
            outcome = await self._try_async(msg)
            tries = 0
            while outcome is not None and self.again(tries, outcome):
                tries += 1
                await asyncio.sleep(self.spec.local_backoff)
                outcome = await self._try_async(msg)
            self._observe(perf_counter() - started)
            return outcome

    def call_batch(self, raws: Sequence[Any]) -> list[BaseException | None]:
        """The outcome of every record, in the order given, however the calls interleaved."""
        if not self._batched:
            return [self.call(raw) for raw in raws]

        async def batch() -> list[BaseException | None]:
            gate = asyncio.Semaphore(self.spec.concurrency)
            if self.spec.ordering == "none":
                return list(await asyncio.gather(*(self._call_async(raw, gate) for raw in raws)))
            outcomes: list[BaseException | None] = [None] * len(raws)

            async def lane(indices: list[int]) -> None:
                for i in indices:  # the next record of the lane waits for this one, local retries included
                    outcomes[i] = await self._call_async(raws[i], gate)

            await asyncio.gather(*(lane(indices) for indices in lanes(raws, self.spec.ordering)))
            return outcomes

        return self._event_loop().run_until_complete(batch())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
