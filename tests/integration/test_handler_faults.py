"""Handlers that misbehave, on a real broker: each fault fails its record, never the worker, and loses nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from kretry import Message, Retrier
from kretry import headers as hdr
from tests.integration.kit import header, produce, read_all, wait_until
from tests.integration.test_retrier import make_retrier
from tests.integration.workers import running

NewTopic = Callable[..., str]
FAULTS_APP = "tests.integration.apps.faults_app:retrier"


class Calls:
    """What a handler was called with, from whichever thread calls it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[int, bytes]] = []

    def add(self, msg: Message) -> None:
        with self._lock:
            self.seen.append((msg.attempt, msg.value or b""))

    def at(self, attempt: int) -> list[bytes]:
        with self._lock:
            return sorted(v for a, v in self.seen if a == attempt)


def failing(
    bootstrap: str, topic: str, fault: Callable[[Message], None], *, is_async: bool = False, **options: Any
) -> tuple[Retrier, Calls]:
    """A retrier with one tier of no delay whose handler for ``topic`` records each call, then runs ``fault``."""
    retrier = make_retrier(bootstrap)
    calls = Calls()

    def handle(msg: Message) -> None:
        calls.add(msg)
        fault(msg)

    async def handle_async(msg: Message) -> None:
        await asyncio.sleep(0)
        handle(msg)

    retrier.handler(topic, delays=["0s"], **options)(handle_async if is_async else handle)
    return retrier, calls


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


def raise_unprintable(msg: Message) -> None:
    if msg.value == b"bad":
        raise Unprintable("order 7")


def test_an_exception_whose_str_raises_is_described_and_the_worker_goes_on(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("unprintable")
    retrier, calls = failing(bootstrap, topic, raise_unprintable)
    with running(retrier) as worker:
        produce(bootstrap, topic, [(None, b"bad", None)])
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)
        produce(bootstrap, topic, [(None, b"after", None)])
        wait_until(lambda: calls.at(0) == [b"after", b"bad"], what="the next record handled")
        assert not worker.stopping.is_set()

    (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)
    for record in (retried, dead):
        error = (header(record, hdr.ERROR) or b"").decode()
        assert error.startswith("Unprintable: Unprintable('order 7')"), error
