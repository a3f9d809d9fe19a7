"""The dispatcher with a stand-in for a confluent_kafka.Message (a plain object with the same accessors)."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from typing import Any

import pytest

import kretry
from kretry.dispatch import Dispatcher, lanes
from kretry.errors import NonRetryable
from kretry.metrics import HANDLER_BUCKETS, Buckets
from kretry.retrier import Retrier
from kretry.serde import DeserializationError
from kretry.testing import Record


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


def record(key: bytes | None, value: bytes, partition: int = 0) -> Record:
    return Record("orders", value, key, partition=partition)


def test_lanes_follow_the_ordering() -> None:
    batch = [record(b"a", b"1"), record(b"b", b"2"), record(None, b"3"), record(b"a", b"4", partition=1)]
    batch += [record(b"a", b"5"), record(None, b"6")]
    assert lanes(batch, "key") == [[0, 4], [1], [2], [3], [5]]
    assert lanes(batch, "partition") == [[0, 1, 2, 4, 5], [3]]
    assert lanes(batch, "none") == [[0], [1], [2], [3], [4], [5]]
    assert lanes([], "key") == []


def run_batch(batch: list[Record], **options: Any) -> tuple[list[bytes], int, list[BaseException | None]]:
    """The values in the order the handler started them, the most records in flight at once, the outcomes."""
    started: list[bytes] = []
    in_flight = peak = 0

    async def handler(msg: kretry.Message) -> None:
        nonlocal in_flight, peak
        started.append(msg.raw_value or b"")
        in_flight += 1
        peak = max(peak, in_flight)
        # Later records of the batch finish first, unless something holds them back.
        await asyncio.sleep(0.001 * (len(batch) - len(started)))
        in_flight -= 1
        if msg.raw_value == b"fail":
            raise ConnectionError("blip")

    d, _, _ = dispatcher(handler, **options)
    try:
        outcomes = d.call_batch(batch)
    finally:
        d.close()
    return started, peak, outcomes


def test_records_of_a_key_wait_for_each_other_other_keys_do_not() -> None:
    batch = [record(b"k1" if i % 2 else b"k2", b"%d" % i) for i in range(8)]
    started, peak, _ = run_batch(batch, concurrency=10)
    assert [v for v in started if int(v) % 2] == [b"1", b"3", b"5", b"7"]
    assert [v for v in started if not int(v) % 2] == [b"0", b"2", b"4", b"6"]
    assert peak == 2


def test_partition_ordering_takes_one_record_of_a_partition_at_a_time() -> None:
    batch = [record(b"%d" % i, b"%d" % i, partition=i % 2) for i in range(6)]
    started, peak, _ = run_batch(batch, concurrency=10, ordering="partition")
    assert [v for v in started if int(v) % 2] == [b"1", b"3", b"5"]
    assert peak == 2
    _, peak, _ = run_batch(batch, concurrency=10, ordering="none")
    assert peak == 6


def test_local_retries_keep_their_keys_slot() -> None:
    batch = [record(b"k", b"fail"), record(b"k", b"next")]
    calls: list[bytes] = []

    async def handler(msg: kretry.Message) -> None:
        calls.append(msg.raw_value or b"")
        await asyncio.sleep(0)
        if msg.raw_value == b"fail":
            raise ConnectionError("blip")

    d, _, _ = dispatcher(handler, local_retries=2, local_backoff="5ms")
    try:
        outcomes = d.call_batch(batch)
    finally:
        d.close()
    assert calls == [b"fail", b"fail", b"fail", b"next"]
    assert isinstance(outcomes[0], ConnectionError)
    assert outcomes[1] is None


def test_an_undecodable_key_never_reaches_the_handler() -> None:
    seen = []
    d, _, _ = dispatcher(seen.append, key_deserializer=lambda raw: raw.decode("ascii"))
    outcome = d.call(record(b"\xff", b"v"))
    assert isinstance(outcome, DeserializationError)
    assert str(outcome).startswith("key deserialization: UnicodeDecodeError")
    assert d.call(record(b"cust1", b"v")) is None
    assert [(m.key, m.raw_key) for m in seen] == [("cust1", b"cust1")]


def test_headers_are_the_producers_and_never_none() -> None:
    raw = Record("orders", b"v", headers=[("a", b"1"), ("kretry-attempt", b"1"), ("empty", None)])  # type: ignore[list-item]
    msg = kretry.Message(raw, 0, "orders")
    assert msg.headers == [("a", b"1"), ("empty", b"")]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"ordering": "keys"}, "ordering must be 'key', 'partition' or 'none', got 'keys'"),
        ({"ordering": None}, "ordering must be"),
        ({"key_deserializer": "utf-8"}, "key_deserializer must be callable"),
    ],
)
def test_ordering_and_key_deserializer_are_checked_at_registration(option: dict[str, Any], message: str) -> None:
    with pytest.raises(kretry.ConfigError, match=message):
        Retrier("svc").handler("orders", **option)


def test_run_handles_records_in_turn_until_the_first_failure() -> None:
    seen: list[bytes | None] = []

    def handler(msg: kretry.Message) -> None:
        seen.append(msg.value)
        if msg.value == b"bad":
            raise ValueError("bad")

    r = Retrier("svc")
    r.handler("orders")(handler)
    buckets = Buckets(HANDLER_BUCKETS)
    d = Dispatcher(r.handlers["orders"], 0, threading.Event(), buckets)
    raws = [Raw(b"a"), Raw(b"b"), Raw(b"bad"), Raw(b"c")]
    end, failure = d.run(raws, 0, float("inf"))
    assert (end, type(failure), seen) == (2, ValueError, [b"a", b"b", b"bad"])
    assert d.run(raws, 3, float("inf")) == (4, None)
    assert sum(buckets.counts) == 4  # every call counted in the handler histogram, the failed one too


def test_run_leaves_the_record_whose_call_ended_past_the_deadline_and_the_rest() -> None:
    seen: list[bytes | None] = []
    d, _, _ = dispatcher(lambda msg: seen.append(msg.value))
    raws = [Raw(b"a"), Raw(b"b")]
    assert d.run(raws, 0, float("-inf")) == (0, None)  # the budget was spent before the first call
    assert seen == []


def test_run_takes_the_slow_path_for_local_retries_and_stops_when_asked() -> None:
    calls: list[bytes | None] = []

    def flaky(msg: kretry.Message) -> None:
        calls.append(msg.value)
        if len(calls) == 1:
            raise ConnectionError("blip")

    d, observed, stop = dispatcher(flaky, local_retries=1, local_backoff="1ms")
    assert d.run([Raw(b"a"), Raw(b"b")], 0, float("inf")) == (2, None)
    assert calls == [b"a", b"a", b"b"]
    assert len(observed) == 2
    stop.set()
    assert d.run([Raw(b"c")], 0, float("inf")) == (0, None)  # a stop asked for: nothing more is handled
    assert calls == [b"a", b"a", b"b"]
