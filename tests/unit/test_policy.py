from __future__ import annotations

import math
import re

import pytest

from kretry.errors import NonRetryable, RetryLater
from kretry.policy import MAX_RETRY_LATER, Action, Decision, Exhausted, Policy, causes, decide

TIERS = Policy(delays=(1.0, 10.0, 60.0))


def _from(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("attempt", "decision"),
    [
        (0, Decision(Action.RETRY, 1, 1.0, "")),
        (1, Decision(Action.RETRY, 2, 10.0, "")),
        (2, Decision(Action.RETRY, 3, 60.0, "")),
        (3, Decision(Action.DEAD_LETTER, 0, 0.0, "exhausted")),
        (7, Decision(Action.DEAD_LETTER, 0, 0.0, "exhausted")),
    ],
)
def test_tiers_then_dead_letter(attempt: int, decision: Decision) -> None:
    assert decide(TIERS, attempt, ValueError("boom")) == decision


def test_no_tiers_dead_letters_at_once() -> None:
    assert decide(Policy(), 0, ValueError()) == Decision(Action.DEAD_LETTER, 0, 0.0, "exhausted")


@pytest.mark.parametrize(
    "exc",
    [
        NonRetryable("bad record"),
        _from(ValueError("wrapped"), NonRetryable("bad record")),
        _from(RuntimeError(), _from(ValueError(), NonRetryable())),
        _from(RetryLater(5), NonRetryable()),
    ],
)
def test_non_retryable_dead_letters_whatever_the_tiers_left(exc: BaseException) -> None:
    assert decide(TIERS, 0, exc) == Decision(Action.DEAD_LETTER, 0, 0.0, "non-retryable")


def test_non_retryable_only_as_context_is_retried() -> None:
    exc = ValueError()
    exc.__context__ = NonRetryable()  # raised *while handling*, not *from*: not the handler's verdict
    assert decide(TIERS, 0, exc).action is Action.RETRY


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (KeyError("k"), Action.DEAD_LETTER),
        (_from(RuntimeError(), KeyError("k")), Action.DEAD_LETTER),
        (ValueError(), Action.RETRY),
        (RetryLater(5), Action.RETRY),
        (_from(RetryLater(5), KeyError("k")), Action.DEAD_LETTER),
    ],
)
def test_dead_letter_on(exc: BaseException, action: Action) -> None:
    policy = Policy(delays=(1.0,), dead_letter_on=(KeyError, LookupError))
    assert decide(policy, 0, exc).action is action


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (TimeoutError(), Action.RETRY),
        (ConnectionResetError(), Action.RETRY),  # a subclass of a listed type
        (_from(RuntimeError("wrapped"), TimeoutError()), Action.RETRY),
        (ValueError(), Action.DEAD_LETTER),
        (RetryLater(2), Action.RETRY),  # the handler asked for it explicitly
    ],
)
def test_retry_on_retries_only_listed_types(exc: BaseException, action: Action) -> None:
    policy = Policy(delays=(1.0,), retry_on=(TimeoutError, ConnectionError))
    decision = decide(policy, 0, exc)
    assert decision.action is action
    if action is Action.DEAD_LETTER:
        assert decision.reason == "non-retryable"


def test_retry_later_uses_its_own_delay() -> None:
    assert decide(TIERS, 1, RetryLater(after=0.25)) == Decision(Action.RETRY, 2, 0.25, "")
    assert decide(TIERS, 0, RetryLater(after=0)) == Decision(Action.RETRY, 1, 0.0, "")


def test_retry_later_does_not_add_a_tier() -> None:
    assert decide(TIERS, 3, RetryLater(after=1)).reason == "exhausted"


@pytest.mark.parametrize("after", [-1, math.nan, math.inf, -math.inf, 10**400])
def test_retry_later_refuses_a_delay_that_is_not_a_finite_non_negative_number(after: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"RetryLater(after={after!r}): must be a finite number")):
        RetryLater(after)


LONG_TIER = Policy(delays=(1.0, 2 * MAX_RETRY_LATER))


@pytest.mark.parametrize(
    ("attempt", "after", "delay"),
    [
        (0, MAX_RETRY_LATER, MAX_RETRY_LATER),
        (0, MAX_RETRY_LATER + 1, MAX_RETRY_LATER),
        (0, 1e300, MAX_RETRY_LATER),
        (1, 1e300, 2 * MAX_RETRY_LATER),  # a tier whose own delay is longer: its retry topic keeps records longer
        (1, 3.5, 3.5),
    ],
)
def test_retry_later_is_clamped_to_what_the_retry_topic_keeps(attempt: int, after: float, delay: float) -> None:
    assert decide(LONG_TIER, attempt, RetryLater(after)) == Decision(Action.RETRY, attempt + 1, delay, "")


@pytest.mark.parametrize("after", [math.nan, math.inf, -5.0])
def test_a_retry_later_delay_changed_after_construction_still_decides_a_finite_delay(after: float) -> None:
    exc = RetryLater(1)
    exc.after = after
    expected = {math.inf: MAX_RETRY_LATER, -5.0: 0.0}.get(after, 1.0)  # nan: the tier's own delay
    assert decide(LONG_TIER, 0, exc) == Decision(Action.RETRY, 1, expected, "")


@pytest.mark.parametrize(
    ("age", "action"), [(None, Action.RETRY), (0.0, Action.RETRY), (59.9, Action.RETRY), (60.0, Action.DEAD_LETTER)]
)
def test_max_age(age: float | None, action: Action) -> None:
    decision = decide(Policy(delays=(1.0,), max_age=60.0), 0, ValueError(), age=age)
    assert decision.action is action
    assert decision.reason == ("max-age" if action is Action.DEAD_LETTER else "")


@pytest.mark.parametrize(("on_exhausted", "action"), [("drop", Action.DROP), ("stop", Action.STOP)])
def test_on_exhausted(on_exhausted: Exhausted, action: Action) -> None:
    policy = Policy(delays=(1.0,), on_exhausted=on_exhausted)
    assert decide(policy, 0, ValueError()).action is Action.RETRY
    assert decide(policy, 1, ValueError()) == Decision(action, 0, 0.0, "exhausted")
    assert decide(policy, 0, NonRetryable()) == Decision(action, 0, 0.0, "non-retryable")


def test_causes_follows_from_chain_and_survives_a_cycle() -> None:
    a, b, c = ValueError("a"), KeyError("b"), NonRetryable("c")
    a.__cause__, b.__cause__, c.__cause__ = b, c, a
    assert list(causes(a)) == [a, b, c]
    assert decide(TIERS, 0, a).reason == "non-retryable"
    own = ValueError()
    own.__cause__ = own
    assert list(causes(own)) == [own]
    assert decide(TIERS, 0, own).action is Action.RETRY
