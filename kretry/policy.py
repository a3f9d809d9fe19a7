"""The retry decision, a pure function of (policy, attempt, exception, age) -> retry at tier n, or give up.

The consume loop only carries the decision out. Order, as in dramatiq's Retries middleware: the handler's
own verdict (NonRetryable), then the handler's classification (dead_letter_on / retry_on), then the tiers
left, then the record's age.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from kretry.errors import NonRetryable, RetryLater
from kretry.serde import DeserializationError

# The longest a RetryLater may put a record off, unless its tier's own delay is longer. Retry topics are created
# keeping records max(2 x tier delay, 7 days) and `topics check` accepts max(2 x tier delay, 1 day): up to the
# larger of this and the tier delay, a waiting record is never deleted before it is due, whatever the handler asks.
MAX_RETRY_LATER = 12 * 3600.0

ExceptionTypes = tuple[type[BaseException], ...]
Exhausted = Literal["dead_letter", "drop", "stop"]


class Action(Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    DROP = "drop"
    STOP = "stop"


@dataclass(frozen=True)
class Policy:
    delays: tuple[float, ...] = ()
    dead_letter_on: ExceptionTypes = ()
    retry_on: ExceptionTypes | None = None  # None: every exception is retryable
    max_age: float | None = None
    on_exhausted: Exhausted = "dead_letter"
    jitter: float = 0.0  # each delay moves by up to this fraction either way

    @property
    def retries(self) -> int:
        return len(self.delays)


@dataclass(frozen=True)
class Decision:
    action: Action
    # The attempt the record is retried at (its topic: topology.attempt_topics[tier], one per tier of equal delays);
    # 0 when it leaves the retry path.
    tier: int
    delay: float  # seconds until the next tier may handle it
    reason: str  # why it left the retry path ("" when retried)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised ``from``, innermost last; safe against cycles."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _give_up(policy: Policy, reason: str) -> Decision:
    action = {"dead_letter": Action.DEAD_LETTER, "drop": Action.DROP, "stop": Action.STOP}[policy.on_exhausted]
    return Decision(action, 0, 0.0, reason)


def classify(policy: Policy, exc: BaseException) -> str | None:
    """The reason a failure must not be retried, or None when it may be."""
    chain = (exc,) if exc.__cause__ is None else tuple(causes(exc))
    if any(isinstance(e, DeserializationError) for e in chain):
        return "deserialization"
    if any(isinstance(e, NonRetryable) for e in chain):
        return "non-retryable"
    if policy.dead_letter_on and any(isinstance(e, policy.dead_letter_on) for e in chain):
        return "non-retryable"
    if isinstance(exc, RetryLater):
        return None
    if policy.retry_on is not None and not any(isinstance(e, policy.retry_on) for e in chain):
        return "non-retryable"
    return None


def _later(after: float, tier: float) -> float:
    """A RetryLater delay kept within [0, max(MAX_RETRY_LATER, tier)]; one that is not a number (set after
    construction, which refuses it) asks for nothing, and the tier's own delay applies."""
    if math.isnan(after):
        return tier
    return min(max(after, 0.0), max(MAX_RETRY_LATER, tier))


def decide(
    policy: Policy,
    attempt: int,
    exc: BaseException,
    age: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What to do with a record whose handler raised ``exc`` at ``attempt`` (0 on the main topic).

    ``age`` is seconds since the record's origin timestamp, for ``max_age``; ``rand`` draws the jitter.
    """
    reason = classify(policy, exc)
    if reason is not None:
        return _give_up(policy, reason)
    if attempt >= policy.retries:
        return _give_up(policy, "exhausted")
    if policy.max_age is not None and age is not None and age >= policy.max_age:
        return _give_up(policy, "max-age")
    delay = policy.delays[attempt]
    if isinstance(exc, RetryLater):
        return Decision(Action.RETRY, attempt + 1, _later(exc.after, delay), "")
    if policy.jitter:
        delay *= 1 + policy.jitter * (2 * rand() - 1)
    return Decision(Action.RETRY, attempt + 1, delay, "")
