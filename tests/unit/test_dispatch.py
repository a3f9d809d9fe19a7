"""The dispatcher with a stand-in for a confluent_kafka.Message (a plain object with the same accessors)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kretry
from kretry.dispatch import Dispatcher
from kretry.errors import NonRetryable
from kretry.retrier import Retrier
from kretry.serde import DeserializationError


class Raw:
    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return None

    def headers(self) -> None:
        return None


def dispatcher(handler: Any, **kwargs: Any) -> tuple[Dispatcher, list[float], threading.Event]:
    r = Retrier("svc")
    r.handler("orders", **kwargs)(handler)
    observed: list[float] = []
    stop = threading.Event()
    return Dispatcher(r.handlers["orders"], 0, stop, observed.append), observed, stop


def test_local_retries_until_success() -> None:
    calls = []

    def handler(msg: kretry.Message) -> None:
        calls.append(msg.value)
        if len(calls) < 3:
            raise ConnectionError("blip")

    d, observed, _ = dispatcher(handler, local_retries=2, local_backoff="1ms")
    assert d.call(Raw(b"x")) is None
    assert calls == [b"x"] * 3
    assert len(observed) == 1  # every try of one record is one observation


def test_local_retries_stop_at_non_retryable_and_at_stop() -> None:
    calls = []

    def handler(msg: kretry.Message) -> None:
        calls.append(1)
        raise NonRetryable("bad")

    d, _, stop = dispatcher(handler, local_retries=5, local_backoff="1ms")
    assert isinstance(d.call(Raw(b"x")), NonRetryable)
    assert calls == [1]

    def flaky(msg: kretry.Message) -> None:
        calls.append(2)
        raise TimeoutError

    d, _, stop = dispatcher(flaky, local_retries=5, local_backoff="1ms")
    stop.set()
    assert isinstance(d.call(Raw(b"x")), TimeoutError)
    assert calls.count(2) == 1


def test_undecodable_values_never_reach_the_handler() -> None:
    seen = []
    d, _, _ = dispatcher(seen.append, value_deserializer=kretry.json)
    outcome = d.call(Raw(b"{oops"))
    assert isinstance(outcome, DeserializationError)
    assert str(outcome).startswith("deserialization: JSONDecodeError")
    assert d.call(Raw(b'{"a": [1]}')) is None
    assert d.call(Raw(None)) is None
    assert [m.value for m in seen] == [{"a": [1]}, None]


def test_async_batch_keeps_the_order_of_outcomes() -> None:
    async def handler(msg: kretry.Message) -> None:
        await asyncio.sleep(0.01 * (5 - int(msg.value or b"0")))
        if msg.value in (b"1", b"3"):
            raise ValueError(msg.value.decode())

    d, observed, _ = dispatcher(handler, concurrency=5)
    try:
        outcomes = d.call_batch([Raw(str(i).encode()) for i in range(5)])
    finally:
        d.close()
    assert [type(o).__name__ if o else None for o in outcomes] == [None, "ValueError", None, "ValueError", None]
    assert len(observed) == 5
