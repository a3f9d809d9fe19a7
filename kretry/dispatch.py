"""Calling a handler: decode the value, call, retry in place a bounded number of times.

Returns the exception that ended the last try, or None on success; what happens to a failed record is the
stage's business. ``async def`` handlers run on an event loop of the stage's own thread, a batch at a time,
at most ``concurrency`` at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any

from kretry.errors import RetryLater
from kretry.message import Message
from kretry.policy import classify
from kretry.retrier import HandlerSpec
from kretry.serde import DeserializationError


class Dispatcher:
    def __init__(
        self, spec: HandlerSpec, attempt: int, stopping: threading.Event, observe: Callable[[float], None]
    ) -> None:
        self.spec = spec
        self._observe = observe  # seconds spent in the handler, every try of a record together
        self.attempt = attempt
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop() if spec.is_async else None

    def message(self, raw: Any) -> Message:
        decode = self.spec.value_deserializer
        if decode is None:
            return Message(raw, self.attempt, self.spec.topic)
        try:
            value = decode(raw.value())
        except Exception as exc:
            raise DeserializationError(f"deserialization: {type(exc).__name__}: {exc}") from exc
        return Message(raw, self.attempt, self.spec.topic, value, decoded=True)

    def _again(self, tries: int, exc: BaseException) -> bool:
        """Retry in place: tries left, a failure worth retrying, and no stop requested."""
        return (
            tries < self.spec.local_retries
            and not isinstance(exc, RetryLater)
            and classify(self.spec.policy, exc) is None
            and not self._stopping.is_set()
        )

    def call(self, raw: Any) -> BaseException | None:
        # The per-record path of every sync stage: attribute lookups hoisted, the common case first.
        spec = self.spec
        try:
            msg = Message(raw, self.attempt, spec.topic) if spec.value_deserializer is None else self.message(raw)
        except DeserializationError as exc:
            return exc
        started = perf_counter()
        try:
            spec.func(msg)
            outcome: BaseException | None = None
        except Exception as exc:
            outcome = self._retry_in_place(msg, exc) if spec.local_retries else exc
        self._observe(perf_counter() - started)
        return outcome

    def _retry_in_place(self, msg: Message, exc: BaseException) -> BaseException | None:
        tries = 0
        while self._again(tries, exc):
            tries += 1
            time.sleep(self.spec.local_backoff)  # bounded at registration: local_retries x local_backoff
            try:
                self.spec.func(msg)
                return None
            except Exception as again:
                exc = again
        return exc

    async def _call_async(self, raw: Any, gate: asyncio.Semaphore) -> BaseException | None:
        try:
            msg = self.message(raw)
        except DeserializationError as exc:
            return exc
        handler: Callable[[Message], Awaitable[Any]] = self.spec.func
        tries = 0
        async with gate:
            started = time.perf_counter()
            try:
                while True:
                    try:
                        await handler(msg)
                        return None
                    except Exception as exc:
                        if not self._again(tries, exc):
                            return exc
                    tries += 1
                    await asyncio.sleep(self.spec.local_backoff)
            finally:
                self._observe(time.perf_counter() - started)

    def call_batch(self, raws: Sequence[Any]) -> list[BaseException | None]:
        """The outcome of every record, in the order given, however the calls interleaved."""
        if self._loop is None:
            return [self.call(raw) for raw in raws]

        async def batch() -> list[BaseException | None]:
            gate = asyncio.Semaphore(self.spec.concurrency)
            return list(await asyncio.gather(*(self._call_async(raw, gate) for raw in raws)))

        return self._loop.run_until_complete(batch())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
