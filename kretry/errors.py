"""Every exception kretry raises or understands.

KretryError                  base of everything kretry raises
├── ConfigError              bad settings or a bad registration, found before anything is consumed
│   └── DurationError        a delay that is not a duration
├── TopologyError            a topic kretry needs is missing or malformed on the cluster
├── BrokerUnavailable        the cluster did not answer at start-up
├── KafkaFatalError          librdkafka reported a fatal error; the worker stops
├── TransactionFenced        exactly_once: a newer worker took over this stage's transactional.id
├── ReplayInProgress         another replay of the same DLQ took over; this one put nothing back
├── StopTimeout              a stage still ran a handler when the stop timeout ran out
└── AppImportError           ``kretry run MODULE:ATTR`` could not load a Retrier

Exceptions a handler raises to steer its record (never raised by kretry itself):
NonRetryable                 dead-letter at once, whatever the tiers left
RetryLater                   move to the next tier, due after ``after`` seconds instead of the tier's delay
"""

from __future__ import annotations

import math


class KretryError(Exception):
    """Base of every exception kretry raises."""


class ConfigError(KretryError):
    """Settings or a handler registration that cannot work; raised before anything is consumed."""


class DurationError(ConfigError, ValueError):
    """A delay that is not a non-negative duration."""


class TopologyError(KretryError):
    """A topic kretry needs is missing, or not the way kretry needs it."""


class BrokerUnavailable(KretryError):
    """The Kafka cluster did not answer."""


class KafkaFatalError(KretryError):
    """librdkafka reported a fatal error: the client cannot go on."""


class TransactionFenced(KretryError):
    """A worker started with the same transactional.id fenced this one: the stage stops, its open transaction
    aborted; the newer worker carries on from the last commit."""


class ReplayInProgress(KretryError):
    """Another replay of the same DLQ started meanwhile and fenced this one off; this one put nothing back."""


class StopTimeout(KretryError):
    """A stage was still in a handler when the stop timeout ran out; its records are handled again later."""


class AppImportError(KretryError):
    """``MODULE:ATTR`` could not be imported or does not name a Retrier."""


class NonRetryable(Exception):
    """Raise from a handler (or ``raise ... from`` one) to send the record to the DLQ at once."""


class RetryLater(Exception):
    """Raise from a handler to move the record to the next tier, due ``after`` seconds from now."""

    def __init__(self, after: float, reason: str = "") -> None:
        # Refused here, inside the handler that raises it (a parsed Retry-After of "inf", say): the ValueError is
        # then that handler's failure, retried by policy, instead of a due time no stage can compute.
        try:
            seconds = float(after)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"RetryLater(after={after!r}): must be a finite number of seconds >= 0")
        super().__init__(reason or f"retry requested after {after}s")
        self.after = seconds
