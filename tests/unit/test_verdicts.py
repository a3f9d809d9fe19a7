"""A stage's remembered retry decisions are exactly policy.decide's."""

from __future__ import annotations

import pytest

from kretry.errors import NonRetryable, RetryLater
from kretry.policy import Action, Policy, decide
from kretry.stage.verdicts import MAX_REMEMBERED, Verdicts


class Custom(Exception):
    pass


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


POLICIES = [
    Policy(delays=(1.0, 2.0)),
    Policy(delays=(1.0,), dead_letter_on=(Custom,)),
    Policy(delays=(1.0,), retry_on=(TimeoutError,)),
    Policy(delays=(1.0, 2.0), max_age=10.0),
    Policy(delays=(1.0,), on_exhausted="drop"),
]
FAILURES = [
    ValueError("x"),
    Custom(),
    TimeoutError(),
    NonRetryable("no"),
    RetryLater(after=0.5),
    caused(RuntimeError("outer"), NonRetryable("inner")),
    caused(RuntimeError("outer"), Custom()),
]


@pytest.mark.parametrize("policy", POLICIES)
def test_every_decision_is_policy_decide_s(policy: Policy) -> None:
    verdicts = Verdicts(policy)
    for _ in range(2):  # the second time from the memo where it applies
        for exc in FAILURES:
            for attempt in range(3):
                for age in (None, 5.0, 50.0):
                    assert verdicts.decide(attempt, exc, age) == decide(policy, attempt, exc, age=age)


def test_jitter_is_drawn_afresh_for_every_record() -> None:
    verdicts = Verdicts(Policy(delays=(10.0,), jitter=0.5))
    delays = {verdicts.decide(0, ValueError(), None).delay for _ in range(20)}
    assert len(delays) > 1


def test_the_memo_stays_bounded() -> None:
    verdicts = Verdicts(Policy(delays=(1.0,)))
    for i in range(MAX_REMEMBERED + 10):
        kind = type(f"E{i}", (Exception,), {})
        assert verdicts.decide(0, kind(), None).action is Action.RETRY
    assert len(verdicts._memo) <= MAX_REMEMBERED
