from __future__ import annotations

import pytest

import kretry
from kretry.backoff import MAX_DELAY, MAX_RETRIES, Backoff
from kretry.errors import ConfigError, DurationError
from kretry.policy import Action, Policy, decide
from kretry.retrier import Retrier


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        (kretry.fixed("5s", 3), (5.0, 5.0, 5.0)),
        (kretry.fixed(0, 2), (0.0, 0.0)),
        (kretry.linear("30s", 3), (30.0, 60.0, 90.0)),
        (kretry.exponential("1s", retries=4), (1.0, 2.0, 4.0, 8.0)),
        (kretry.exponential("100ms", 3, retries=3), (0.1, 0.3, 0.9)),
        (kretry.exponential("1s", max_delay="3s", retries=4), (1.0, 2.0, 3.0, 3.0)),
        (kretry.fixed("1m", 0), ()),
    ],
)
def test_helpers_name_every_tier(backoff: Backoff, delays: tuple[float, ...]) -> None:
    assert backoff.delays == pytest.approx(delays)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: kretry.fixed("-1s", 2), DurationError, "fixed"),
        (lambda: kretry.fixed("1s", -1), ConfigError, "retries must be a whole number"),
        (lambda: kretry.fixed("1s", MAX_RETRIES + 1), ConfigError, f"from 0 to {MAX_RETRIES}"),
        (lambda: kretry.fixed("1s", 2, jitter=1.0), ConfigError, "jitter"),
        (lambda: kretry.fixed(0.0001, 2), ConfigError, "precision of 1 ms"),
        (lambda: kretry.exponential("1s", 0.5, retries=2), ConfigError, "multiplier"),
        (lambda: kretry.exponential("10s", max_delay="1s", retries=2), ConfigError, "below initial"),
        (lambda: kretry.linear("soon", 2), DurationError, "linear"),
        (lambda: kretry.fixed("366d", 1), ConfigError, r"fixed\(\): delays\[0\] = 3.16224e\+07s is longer"),
        (lambda: kretry.exponential("1s", 100, retries=6), ConfigError, r"delays\[4\] = 1e\+08s is longer"),
    ],
)
def test_helpers_refuse_nonsense(make: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]


def test_a_handler_takes_a_helper_and_its_jitter() -> None:
    r = Retrier("svc")
    r.handler("orders", delays=kretry.exponential("1s", retries=3, jitter=0.2))(lambda msg: None)
    policy = r.handlers["orders"].policy
    assert policy.delays == (1.0, 2.0, 4.0)
    assert policy.jitter == 0.2
    assert [s.topic for s in r.stages()] == ["orders", "orders_retry_1", "orders_retry_2", "orders_retry_3"]


@pytest.mark.parametrize(("draw", "delay"), [(0.0, 8.0), (0.5, 10.0), (1.0, 12.0)])
def test_jitter_moves_the_delay_within_its_fraction(draw: float, delay: float) -> None:
    policy = Policy(delays=(10.0,), jitter=0.2)
    decision = decide(policy, 0, RuntimeError(), rand=lambda: draw)
    assert (decision.action, decision.delay) == (Action.RETRY, pytest.approx(delay))


def test_local_retry_budget_is_bounded() -> None:
    r = Retrier("svc")
    with pytest.raises(ConfigError, match="holds the partition too long"):
        r.handler("orders", local_retries=100, local_backoff="1s")
    with pytest.raises(ConfigError, match="local_retries"):
        r.handler("orders", local_retries=-1)
    with pytest.raises(ConfigError, match="concurrency"):
        r.handler("orders", concurrency=0)(lambda msg: None)


def test_a_delay_no_retry_topic_can_keep_is_refused_at_registration() -> None:
    r = Retrier("svc")
    with pytest.raises(ConfigError, match=r"handler 'orders': delays\[1\] = 1e\+300s is longer .* 365d"):
        r.handler("orders", delays=["1s", 1e300])
    r.handler("orders", delays=[MAX_DELAY, "365d"])(lambda msg: None)
    assert r.handlers["orders"].policy.delays == (MAX_DELAY, MAX_DELAY)
