"""Handlers that misbehave, on a real broker: each fault fails its record, never the worker, and loses nothing."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kretry import Message, Retrier, RetryLater
from kretry import headers as hdr
from kretry.cli import EXIT_CONFIG
from kretry.policy import MAX_RETRY_LATER
from tests.integration.kit import committed, header, produce, read_all, unique, wait_until
from tests.integration.test_process import assigned_stages
from tests.integration.test_retrier import make_retrier
from tests.integration.workers import kretry_process, running, stop

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


def traced(fn: Callable[[Message], Any]) -> Callable[[Message], Any]:
    """A tracing decorator as users write them: plain ``def``, ``functools.wraps``, whatever ``fn`` returns."""

    @functools.wraps(fn)
    def wrapper(msg: Message) -> Any:
        return fn(msg)

    return wrapper


def unwrappable(fn: Callable[[Message], Awaitable[None]]) -> Callable[[Message], Any]:
    """A sync callable returning a coroutine that nothing can see through: only its result tells."""
    return lambda msg: fn(msg)


@pytest.mark.parametrize("wrap", [traced, unwrappable], ids=["functools.wraps", "lambda"])
def test_a_sync_wrapper_around_an_async_handler_runs_its_body(
    bootstrap: str, new_topic: NewTopic, wrap: Callable[[Callable[[Message], Awaitable[None]]], Any]
) -> None:
    topic = new_topic("wrapped")
    retrier = make_retrier(bootstrap)
    calls = Calls()

    async def body(msg: Message) -> None:
        await asyncio.sleep(0.01)
        calls.add(msg)
        if (msg.value or b"").startswith(b"fail") and msg.attempt == 0:
            raise ConnectionError("first try fails")

    retrier.handler(topic, delays=["0s"])(wrap(body))
    values = [b"fail-0", b"ok-1", b"fail-2", b"ok-3", b"ok-4"]
    failing = [v for v in values if v.startswith(b"fail")]
    with running(retrier) as worker:
        produce(bootstrap, topic, [(None, v, None) for v in values])
        wait_until(lambda: calls.at(1) == failing, what="the failing records handled again on retry_1")
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [5], what="main committed")
        assert not worker.stopping.is_set()

    assert calls.at(0) == sorted(values)
    retried = read_all(bootstrap, f"{topic}_retry_1", expected=len(failing))
    assert sorted(m.value() for m in retried) == failing
    assert {header(m, hdr.ERROR) for m in retried} == {b"ConnectionError: first try fails"}


FAULTS: dict[str, tuple[bool, Callable[[], BaseException]]] = {
    "async CancelledError": (True, asyncio.CancelledError),
    "sync GeneratorExit": (False, GeneratorExit),
    "sync KeyboardInterrupt": (False, KeyboardInterrupt),
    "async SystemExit": (True, lambda: SystemExit(3)),
}


@pytest.mark.parametrize("local_retries", [0, 1])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_base_exception_from_a_handler_fails_only_its_record(
    bootstrap: str, new_topic: NewTopic, fault: str, local_retries: int
) -> None:
    is_async, make = FAULTS[fault]

    def first_try_fails(msg: Message) -> None:
        if msg.value == b"bad" and msg.attempt == 0:
            raise make()

    topic = new_topic("base")
    options: dict[str, Any] = {"local_retries": local_retries, "local_backoff": "1ms"}
    retrier, calls = failing(bootstrap, topic, first_try_fails, is_async=is_async, **options)
    with running(retrier) as worker:
        produce(bootstrap, topic, [(None, b"bad", None), (None, b"good", None)])
        wait_until(lambda: calls.at(1) == [b"bad"], what="the failed record handled again on retry_1")
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [2], what="main committed")
        assert not worker.stopping.is_set()

    assert calls.at(0) == [b"bad"] * (1 + local_retries) + [b"good"]
    (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)
    assert (header(retried, hdr.ERROR) or b"").startswith(type(make()).__name__.encode())


def faults_env(bootstrap: str, topic: str, delays: list[float | str]) -> dict[str, str]:
    return {
        "KRETRY_BOOTSTRAP_SERVERS": bootstrap,
        "APP_GROUP": unique("svc"),
        "APP_DLQ": unique("dlq"),
        "APP_TOPIC": topic,
        "APP_DELAYS": json.dumps(delays),
    }


def test_sys_exit_in_a_handler_fails_the_record_and_the_process_lives_on(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("exit")
    env = faults_env(bootstrap, topic, ["30s"])
    log = tmp_path / "worker.log"
    proc = kretry_process(FAULTS_APP, env, log=log)
    try:
        wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="assignment")
        produce(bootstrap, topic, [(None, b"exit", None), (None, b"fine", None)])
        wait_until(lambda: committed(bootstrap, env["APP_GROUP"], topic) == [2], what="main committed")
        (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1, timeout=10)
        assert proc.poll() is None, f"the worker exited with {proc.returncode}"
    finally:
        code = stop(proc)
    assert code == 0
    assert retried.value() == b"exit"
    assert header(retried, hdr.ERROR) == b"SystemExit: sys.exit(0) called"


@pytest.mark.parametrize("after", [math.nan, math.inf])
def test_retry_later_with_a_non_finite_delay_is_an_ordinary_failure(
    bootstrap: str, new_topic: NewTopic, after: float
) -> None:
    def later(msg: Message) -> None:
        if msg.attempt == 0:
            raise RetryLater(after=after, reason="Retry-After parsed")

    topic = new_topic("later")
    retrier, calls = failing(bootstrap, topic, later)
    with running(retrier) as worker:
        produce(bootstrap, topic, [(None, b"r", None)])
        wait_until(lambda: calls.at(1) == [b"r"], what="the record handled on retry_1")
        assert not worker.stopping.is_set()

    (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)
    error = (header(retried, hdr.ERROR) or b"").decode()
    assert error.startswith(f"ValueError: RetryLater(after={after!r})"), error


def test_a_huge_retry_later_waits_no_longer_than_the_retry_topic_keeps_records(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = new_topic("later")
    retrier = make_retrier(bootstrap)

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        raise RetryLater(after=1e300)

    with running(retrier) as worker:
        before = time.time()
        produce(bootstrap, topic, [(None, b"r", None)])
        (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)
        after = time.time()
        assert not worker.stopping.is_set()

    due_ms = int(header(retried, hdr.DUE_AT) or b"-1")
    assert (before + MAX_RETRY_LATER) * 1000 <= due_ms <= (after + MAX_RETRY_LATER) * 1000


def test_a_producers_own_kretry_named_header_travels_unchanged(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("ownhdr")
    retrier = make_retrier(bootstrap)
    theirs = [("kretry-trace-id", b"abc-123"), ("tenant", b"t1")]
    seen: list[list[tuple[str, bytes]]] = []

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        seen.append(msg.headers)
        raise RuntimeError("always")

    with running(retrier):
        produce(bootstrap, topic, [(b"k", b"v", theirs)])
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)

    (retried,) = read_all(bootstrap, f"{topic}_retry_1", expected=1)
    assert seen == [theirs, theirs]
    for record in (retried, dead):
        assert header(record, "kretry-trace-id") == b"abc-123"
        assert hdr.user_headers(record.headers()) == theirs


def test_a_delay_no_topic_can_retain_is_refused_at_registration(bootstrap: str, new_topic: NewTopic) -> None:
    env = faults_env(bootstrap, new_topic("huge"), [1e300])
    proc = kretry_process(FAULTS_APP, env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_CONFIG, err.decode()
    assert "delays[0]" in err.decode()
