from __future__ import annotations

from typing import Any

import pytest

from kretry.backoff import MAX_RETRIES, MAX_TIERS
from kretry.errors import ConfigError, DurationError, NonRetryable
from kretry.policy import Policy
from kretry.retrier import Retrier


def handle(msg: Any) -> None:
    pass


def test_constructor_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_GROUP_ID", "env-group")
    monkeypatch.setenv("KRETRY_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("KRETRY_DLQ_TOPIC", "env_dlq")
    env = Retrier()
    assert (env.group_id, env.settings.bootstrap_servers, env.dlq_topic) == ("env-group", "env:9092", "env_dlq")
    args = Retrier("svc", bootstrap_servers="arg:9092", dlq_topic="arg_dlq")
    assert (args.group_id, args.settings.bootstrap_servers, args.dlq_topic) == ("svc", "arg:9092", "arg_dlq")
    assert Retrier("svc", dlq_topic=None).dlq_topic is None


def test_unknown_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_GROUP", "svc")
    with pytest.raises(ConfigError, match="unknown setting KRETRY_GROUP"):
        Retrier("svc")


def test_group_id_is_required() -> None:
    with pytest.raises(ConfigError, match=r"group_id: required.*KRETRY_GROUP_ID"):
        Retrier()


def test_registration() -> None:
    r = Retrier("svc")
    assert r.dlq_topic == "dead_letter_queue"
    returned = r.handler("orders", delays=["1s", 60], dead_letter_on=KeyError, max_age="1h")(handle)
    assert returned is handle
    spec = r.handlers["orders"]
    assert spec.func is handle
    assert spec.policy == Policy((1.0, 60.0), (KeyError,), None, 3600.0, "dead_letter")
    assert spec.stage_topics == ["orders", "orders_retry_1", "orders_retry_2"]
    assert "orders" in repr(r)


def test_empty_delays_allowed() -> None:
    r = Retrier("svc")
    r.handler("orders")(handle)
    assert r.handlers["orders"].policy.retries == 0
    assert [s.topic for s in r.stages()] == ["orders"]


def test_duplicate_topic() -> None:
    r = Retrier("svc")
    r.handler("orders")(handle)
    with pytest.raises(ConfigError, match="'orders': a handler for this topic is already registered"):
        r.handler("orders")


@pytest.mark.parametrize(
    ("delays", "error", "message"),
    [
        (["1s", "soon"], DurationError, r"handler 'orders': delays\[1\]: 'soon'"),
        ([1, -1], DurationError, r"handler 'orders': delays\[1\]"),
        ([True], DurationError, r"handler 'orders': delays\[0\]"),
        ("5s", ConfigError, "delays must be a list"),
        (5, ConfigError, "delays must be a list"),
        ([1] * (MAX_RETRIES + 1), ConfigError, f"{MAX_RETRIES + 1} retries; at most {MAX_RETRIES}"),
        (list(range(1, MAX_TIERS + 2)), ConfigError, f"{MAX_TIERS + 1} retry tiers; at most {MAX_TIERS}"),
        ([1, 2] * (MAX_TIERS // 2 + 1), ConfigError, f"{MAX_TIERS + 2} retry tiers; at most {MAX_TIERS}"),
    ],
)
def test_bad_delays(delays: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Retrier("svc").handler("orders", delays=delays)


def test_max_retries_tiers_allowed() -> None:
    r = Retrier("svc")
    r.handler("orders", delays=[1] * MAX_RETRIES)(handle)
    assert r.handlers["orders"].policy.retries == MAX_RETRIES
    assert [s.topic for s in r.stages()] == ["orders", "orders_retry_1"]  # equal delays: one tier
    r.handler("payments", delays=list(range(1, MAX_TIERS + 1)))(handle)
    assert len(r.handlers["payments"].stage_topics) == MAX_TIERS + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dead_letter_on": [KeyError]}, "dead_letter_on: expected an exception class"),
        ({"retry_on": ()}, "retry_on: expected an exception class"),
        ({"retry_on": (TimeoutError, int)}, "retry_on: expected an exception class"),
        ({"max_age": "forever"}, "max_age: 'forever'"),
        ({"retry_topic": "{topic}_retry"}, "must contain"),
        ({"on_exhausted": "ignore"}, "on_exhausted must be 'dead_letter', 'drop' or 'stop'"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Retrier("svc").handler("orders", **kwargs)


def test_options_normalised() -> None:
    r = Retrier("svc")
    r.handler("orders", retry_on=TimeoutError, dead_letter_on=(KeyError, NonRetryable))(handle)
    policy = r.handlers["orders"].policy
    assert (policy.retry_on, policy.dead_letter_on) == ((TimeoutError,), (KeyError, NonRetryable))


@pytest.mark.parametrize(
    ("dlq", "on_exhausted", "result"),
    [
        ("dlq", None, "dead_letter"),
        ("dlq", "drop", "drop"),
        ("dlq", "stop", "stop"),
        (None, "drop", "drop"),
        (None, "stop", "stop"),
        (None, None, "without a DLQ, on_exhausted must be 'drop' or 'stop'"),
        (None, "dead_letter", "on_exhausted='dead_letter' needs a dlq_topic"),
    ],
)
def test_on_exhausted(dlq: str | None, on_exhausted: Any, result: str) -> None:
    r = Retrier("svc", dlq_topic=dlq)
    if result in ("dead_letter", "drop", "stop"):
        r.handler("orders", on_exhausted=on_exhausted)(handle)
        assert r.handlers["orders"].policy.on_exhausted == result
    else:
        with pytest.raises(ConfigError, match=result):
            r.handler("orders", on_exhausted=on_exhausted)


def test_bad_topic_name() -> None:
    with pytest.raises(ConfigError, match=r"^handler: 'or ders'"):
        Retrier("svc").handler("or ders")


def test_handler_must_be_callable() -> None:
    r = Retrier("svc")
    with pytest.raises(ConfigError, match="'orders': 42 is not callable"):
        r.handler("orders")(42)  # type: ignore[type-var]
    assert r.handlers == {}


def test_async_handlers_are_registered_as_such() -> None:
    r = Retrier("svc")

    async def handle_async(msg: Any) -> None:
        pass

    r.handler("orders", concurrency=4)(handle_async)
    assert r.handlers["orders"].is_async
    assert r.handlers["orders"].concurrency == 4


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (("orders", 2), ("orders_retry_2", 0), "'orders_retry_2' would be both retry 2 of 'orders' and handler"),
        (("orders_retry_1", 0), ("orders", 1), "'orders_retry_1' would be both handler 'orders_retry_1' and retry 1"),
        (("a", 0), ("dead_letter_queue", 0), "'dead_letter_queue' would be both the DLQ and handler"),
    ],
)
def test_name_clash_is_refused_and_not_registered(
    first: tuple[str, int], second: tuple[str, int], message: str
) -> None:
    r = Retrier("svc")
    # Distinct delays: one retry topic per retry (equal delays in a row would share one).
    r.handler(first[0], delays=list(range(1, first[1] + 1)))(handle)
    with pytest.raises(ConfigError, match=message):
        r.handler(second[0], delays=list(range(1, second[1] + 1)))(handle)
    assert list(r.handlers) == [first[0]]


def test_dlq_clash_with_a_retry_topic() -> None:
    r = Retrier("svc", dlq_topic="orders.retry.1")
    with pytest.raises(ConfigError, match=r"'orders\.retry\.1' would be both the DLQ and retry 1 of 'orders'"):
        r.handler("orders", delays=[1], retry_topic="{topic}.retry.{attempt}")(handle)


def test_stages() -> None:
    r = Retrier("svc")
    r.handler("orders", delays=["1s", "1m"])(handle)
    r.handler("payments", delays=["500ms"], retry_topic="{topic}.retry.{attempt}")(handle)
    stages = [(s.handler.topic, s.attempt, s.topic, s.group, s.delay) for s in r.stages()]
    assert stages == [
        ("orders", 0, "orders", "svc", 0.0),
        ("payments", 0, "payments", "svc", 0.0),
        ("orders", 1, "orders_retry_1", "svc.orders_retry_1", 1.0),
        ("payments", 1, "payments.retry.1", "svc.payments.retry.1", 0.5),
        ("orders", 2, "orders_retry_2", "svc.orders_retry_2", 60.0),
    ]


def test_handlers_is_a_copy() -> None:
    r = Retrier("svc")
    r.handler("orders")(handle)
    r.handlers.clear()  # type: ignore[attr-defined]
    assert list(r.handlers) == ["orders"]
