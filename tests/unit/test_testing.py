"""kretry.testing: a handler's Message, its failures' outcomes and whole retry ladders, with no broker."""

from __future__ import annotations

import asyncio

import pytest

import kretry
from kretry import Message, NonRetryable, Retrier, RetryLater
from kretry import testing as kt
from kretry.serde import DeserializationError


def orders(**options: object) -> Retrier:
    retrier = Retrier("svc", dlq_topic="dlq")
    options.setdefault("delays", ["5s", "1m"])

    @retrier.handler("orders", **options)  # type: ignore[arg-type]
    def handle(msg: Message) -> None: ...

    return retrier


def test_the_kit_exports_what_it_documents() -> None:
    assert sorted(kt.__all__) == sorted(n for n in vars(kt) if not n.startswith("_") and n in kt.__all__)
    assert all(callable(getattr(kt, n)) for n in kt.__all__)


def test_message_is_decoded_by_the_handlers_own_deserializers() -> None:
    retrier = orders(value_deserializer=kretry.json, key_deserializer=bytes.decode)
    msg = kt.message(retrier, "orders", key=b"cust1", value='{"id": 7}', headers=[("trace", b"t1")])
    assert (msg.key, msg.raw_key, msg.value, msg.raw_value) == ("cust1", b"cust1", {"id": 7}, b'{"id": 7}')
    assert msg.headers == [("trace", b"t1")]
    assert (msg.topic, msg.attempt, msg.origin_topic, msg.replays) == ("orders", 0, "orders", 0)
    same = kt.message(handler=retrier.handlers["orders"], key="c", value=b"{}")
    assert same.value == {}
    with pytest.raises(DeserializationError, match=r"^deserialization: JSONDecodeError"):
        kt.message(retrier, "orders", value=b"{oops")


def test_message_on_a_retry_topic_carries_its_origin_and_hides_kretrys_headers() -> None:
    msg = kt.message(orders(), "orders", value=b"v", headers=[("a", b"1")], attempt=2, partition=3, offset=41)
    assert (msg.topic, msg.attempt, msg.partition) == ("orders_retry_2", 2, 3)
    assert (msg.origin_partition, msg.origin_offset) == (3, 41)
    assert msg.headers == [("a", b"1")]
    main = kt.message(topic="orders", value=b"v", partition=1, offset=9, replays=2)
    assert (main.origin_partition, main.origin_offset, main.replays, main.headers) == (1, 9, 2, [])


def test_message_refuses_an_unknown_topic_or_attempt() -> None:
    with pytest.raises(kretry.ConfigError, match="no handler registered for topic 'payments'"):
        kt.message(orders(), "payments")
    with pytest.raises(kretry.ConfigError, match="attempt must be from 0 to 2"):
        kt.message(orders(), "orders", attempt=3)
    with pytest.raises(kretry.ConfigError):
        kt.message()


@pytest.mark.parametrize(
    ("exc", "attempt", "expected"),
    [
        (TimeoutError(), 0, kt.Outcome("retried", "orders_retry_1", 1, 5.0, "")),
        (TimeoutError(), 1, kt.Outcome("retried", "orders_retry_2", 2, 60.0, "")),
        (TimeoutError(), 2, kt.Outcome("dead_lettered", "dlq", 0, 0.0, "exhausted")),
        (RetryLater(after=90), 0, kt.Outcome("retried", "orders_retry_1", 1, 90.0, "")),
        (NonRetryable("bad"), 0, kt.Outcome("dead_lettered", "dlq", 0, 0.0, "non-retryable")),
        (KeyError("x"), 0, kt.Outcome("dead_lettered", "dlq", 0, 0.0, "non-retryable")),
        (DeserializationError("d"), 1, kt.Outcome("dead_lettered", "dlq", 0, 0.0, "deserialization")),
    ],
)
def test_outcome_says_where_a_failure_sends_the_record(exc: BaseException, attempt: int, expected: object) -> None:
    assert kt.outcome(orders(dead_letter_on=KeyError), "orders", exc, attempt) == expected


def test_outcome_drop_stop_and_max_age() -> None:
    retrier = Retrier("svc", dlq_topic=None)
    retrier.handler("a", delays=["1s"], on_exhausted="drop")(lambda m: None)
    retrier.handler("b", delays=["1s"], on_exhausted="stop", max_age="1m")(lambda m: None)
    assert kt.outcome(retrier, "a", ValueError(), 1) == kt.Outcome("dropped", None, 0, 0.0, "exhausted")
    assert kt.outcome(retrier, "b", ValueError(), 0, age=61).fate == "stopped"
    assert kt.outcome(retrier, "b", ValueError(), 0, age=59).fate == "retried"


def test_run_ladder_goes_through_every_tier_to_the_dlq_without_waiting() -> None:
    retrier = Retrier("svc", dlq_topic="dlq")
    seen: list[tuple[int, str, int, int]] = []

    @retrier.handler("orders", delays=["5s", "1m"], local_retries=1, local_backoff="50ms")
    def handle(msg: Message) -> None:
        seen.append((msg.attempt, msg.topic, msg.origin_offset, msg.replays))
        raise TimeoutError("downstream")

    ladder = kt.run_ladder(retrier, "orders", key=b"k", value=b"v", offset=12, replays=1)
    assert [(t.topic, t.attempt, t.local, t.delay) for t in ladder.tries] == [
        ("orders", 0, 0, 0.05),
        ("orders", 0, 1, 5.0),
        ("orders_retry_1", 1, 0, 0.05),
        ("orders_retry_1", 1, 1, 60.0),
        ("orders_retry_2", 2, 0, 0.05),
        ("orders_retry_2", 2, 1, 0.0),
    ]
    assert all(isinstance(t.error, TimeoutError) for t in ladder.tries)
    assert (ladder.fate, ladder.topic, ladder.reason) == ("dead_lettered", "dlq", "exhausted")
    assert ladder.waited == pytest.approx(65.15)
    assert seen == [(0, "orders", 12, 1)] * 2 + [(1, "orders_retry_1", 12, 1)] * 2 + [(2, "orders_retry_2", 12, 1)] * 2


def test_run_ladder_runs_async_handlers_and_stops_at_success() -> None:
    retrier = Retrier("svc")

    @retrier.handler("orders", delays=["5s", "1m"], value_deserializer=kretry.json)
    async def handle(msg: Message) -> None:
        await asyncio.sleep(0)
        if msg.attempt == 0:
            raise RetryLater(after=30)

    ladder = kt.run_ladder(retrier, "orders", value=b'{"id": 1}')
    assert [(t.topic, type(t.error).__name__ if t.error else None, t.delay) for t in ladder.tries] == [
        ("orders", "RetryLater", 30.0),
        ("orders_retry_1", None, 0.0),
    ]
    assert (ladder.fate, ladder.topic, ladder.reason) == ("succeeded", "orders_retry_1", "")


def test_run_ladder_max_age_counts_the_delays_waited() -> None:
    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("quotes", delays=["1m", "10m", "1h"], max_age="5m")(lambda msg: 1 / 0)
    ladder = kt.run_ladder(retrier, "quotes")
    assert [t.attempt for t in ladder.tries] == [0, 1, 2]
    assert (ladder.fate, ladder.reason) == ("dead_lettered", "max-age")


def test_run_ladder_a_poison_value_never_reaches_the_handler() -> None:
    calls = []
    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("events", delays=["1s"], value_deserializer=kretry.json)(calls.append)
    ladder = kt.run_ladder(retrier, "events", value=b"{oops")
    assert calls == []
    assert len(ladder.tries) == 1
    assert isinstance(ladder.tries[0].error, DeserializationError)
    assert (ladder.fate, ladder.reason) == ("dead_lettered", "deserialization")


def test_run_ladder_drop_and_stop() -> None:
    retrier = Retrier("svc", dlq_topic=None)
    retrier.handler("a", delays=[], on_exhausted="drop")(lambda msg: 1 / 0)
    retrier.handler("b", delays=["1s"], on_exhausted="stop")(lambda msg: 1 / 0)
    assert (kt.run_ladder(retrier, "a").fate, kt.run_ladder(retrier, "a").topic) == ("dropped", None)
    stopped = kt.run_ladder(retrier, "b")
    assert (stopped.fate, len(stopped.tries)) == ("stopped", 2)
