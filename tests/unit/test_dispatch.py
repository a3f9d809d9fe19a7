"""The dispatcher with a stand-in for a confluent_kafka.Message (a plain object with the same accessors)."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from typing import Any

import pytest

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


def traced(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(msg: kretry.Message) -> Any:
        return fn(msg)

    return wrapper


def test_an_async_handler_behind_functools_wraps_runs_batched() -> None:
    ran = []

    async def handler(msg: kretry.Message) -> None:
        await asyncio.sleep(0)
        ran.append(msg.value)

    d, _, _ = dispatcher(traced(handler))
    assert d.spec.is_async
    try:
        assert d.call_batch([Raw(b"a"), Raw(b"b")]) == [None, None]
    finally:
        d.close()
    assert ran == [b"a", b"b"]


def test_an_awaitable_a_sync_handler_returns_is_awaited_and_its_outcome_counts() -> None:
    tries: list[bytes | None] = []

    async def body(msg: kretry.Message) -> None:
        tries.append(msg.value)
        if msg.value == b"exit":
            raise SystemExit(0)  # escapes a Task's own handling: the loop must stay usable after it
        if len(tries) == 2:
            raise ConnectionError("once")

    d, _, _ = dispatcher(lambda msg: body(msg), local_retries=1, local_backoff="1ms")
    assert not d.spec.is_async
    try:
        outcomes = d.call_batch([Raw(b"a"), Raw(b"b"), Raw(b"exit"), Raw(b"c")])
    finally:
        d.close()
    assert [type(o).__name__ if o else None for o in outcomes] == [None, None, "SystemExit", None]
    assert tries == [b"a", b"b", b"b", b"exit", b"exit", b"c"]


@pytest.mark.parametrize("fault", [GeneratorExit, KeyboardInterrupt, SystemExit, asyncio.CancelledError])
@pytest.mark.parametrize("is_async", [False, True])
def test_every_base_exception_is_the_records_failure_and_retried_in_place(
    fault: type[BaseException], is_async: bool
) -> None:
    calls = []

    def check(msg: kretry.Message) -> None:
        calls.append(msg.value)
        if msg.value == b"bad":
            raise fault

    async def async_check(msg: kretry.Message) -> None:
        check(msg)

    d, observed, _ = dispatcher(async_check if is_async else check, local_retries=2, local_backoff="1ms")
    try:
        outcomes = d.call_batch([Raw(b"bad"), Raw(b"good")])
    finally:
        d.close()
    assert isinstance(outcomes[0], fault)
    assert outcomes[1] is None
    assert sorted(calls) == [b"bad"] * 3 + [b"good"]
    assert len(observed) == 2


def test_a_deserializer_that_exits_fails_only_its_record() -> None:
    def decode(raw: bytes | None) -> bytes | None:
        if raw == b"exit":
            sys.exit(2)
        return raw

    d, _, _ = dispatcher(lambda msg: None, value_deserializer=decode)
    outcome = d.call(Raw(b"exit"))
    assert isinstance(outcome, DeserializationError)
    assert str(outcome) == "deserialization: SystemExit: sys.exit(2) called"
    assert d.call(Raw(b"fine")) is None
