"""Pure: a stage's retry decisions, remembered where nothing but the exception's class and the attempt decides them.

``policy.decide`` classifies the exception (its class and causes against NonRetryable, dead_letter_on and retry_on)
and builds a Decision, for every failed record. When the exception has no cause, is not a RetryLater (whose delay is
its own), and the policy has neither jitter (a fresh draw each time) nor max_age (the record's own age), the outcome
is the same for every record that fails the same way at the same attempt: a failure storm decides once.
"""

from __future__ import annotations

from kretry.errors import RetryLater
from kretry.policy import Decision, Policy, decide

MAX_REMEMBERED = 1024  # (class, attempt) pairs; past it the memo starts again (classes made on the fly)


class Verdicts:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._fixed = not policy.jitter and policy.max_age is None
        self._memo: dict[tuple[type[BaseException], int], Decision] = {}

    def decide(self, attempt: int, exc: BaseException, age: float | None) -> Decision:
        """``decide(policy, attempt, exc, age)``; ``age`` matters only with max_age."""
        if not self._fixed or exc.__cause__ is not None or isinstance(exc, RetryLater):
            return decide(self.policy, attempt, exc, age=age)
        key = (type(exc), attempt)
        decision = self._memo.get(key)
        if decision is None:
            if len(self._memo) >= MAX_REMEMBERED:
                self._memo.clear()
            decision = self._memo[key] = decide(self.policy, attempt, exc)
        return decision
