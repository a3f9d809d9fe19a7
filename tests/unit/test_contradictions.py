"""Registration refuses options that contradict each other, naming the field; what merely looks odd is allowed."""

from __future__ import annotations

import pytest

from kretry import ConfigError, Message, Retrier


def retrier() -> Retrier:
    return Retrier(group_id="contradictions", bootstrap_servers="127.0.0.1:9092")


def sync(msg: Message) -> None: ...


async def coro(msg: Message) -> None: ...


def test_concurrency_on_a_sync_handler_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"handler 'orders': concurrency.*async def"):
        retrier().handler("orders", delays=["1s"], concurrency=5)(sync)


def test_concurrency_on_an_async_handler_and_the_default_on_a_sync_one_are_fine() -> None:
    r = retrier()
    r.handler("a", delays=["1s"], concurrency=5)(coro)
    r.handler("b", delays=["1s"])(sync)
    assert (r.handlers["a"].concurrency, r.handlers["b"].concurrency) == (5, 10)


@pytest.mark.parametrize(
    ("retry_on", "dead_letter_on", "dead"),
    [
        (TimeoutError, TimeoutError, "TimeoutError"),
        ((TimeoutError, KeyError), (ValueError, KeyError), "KeyError"),
        (ConnectionRefusedError, ConnectionError, "ConnectionRefusedError"),  # a subclass: always dead-lettered
    ],
)
def test_a_retry_on_class_that_dead_letter_on_always_catches_is_refused(
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    dead_letter_on: type[BaseException] | tuple[type[BaseException], ...],
    dead: str,
) -> None:
    with pytest.raises(ConfigError, match=rf"handler 'orders': retry_on: {dead} .*dead_letter_on"):
        retrier().handler("orders", delays=["1s"], retry_on=retry_on, dead_letter_on=dead_letter_on)(sync)


def test_dead_letter_on_may_carve_a_subclass_out_of_retry_on() -> None:
    # Retry connection errors, but not a refused connection: dead_letter_on is looked at first, so both count.
    r = retrier()
    r.handler("orders", delays=["1s"], retry_on=ConnectionError, dead_letter_on=ConnectionRefusedError)(sync)
    assert r.handlers["orders"].policy.retry_on == (ConnectionError,)


def test_drop_with_a_dlq_and_no_delays_are_allowed() -> None:
    r = retrier()
    r.handler("metrics", delays=["1s"], on_exhausted="drop")(sync)
    r.handler("orders", delays=[])(sync)
    assert r.dlq_topic is not None
    assert r.handlers["metrics"].policy.on_exhausted == "drop"
    assert r.handlers["orders"].policy.retries == 0
