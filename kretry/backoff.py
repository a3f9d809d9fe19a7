"""Backoff helpers: each names the delay of every retry tier, so ``delays=`` reads as the policy it is.

``fixed("5s", retries=3)`` is ``["5s", "5s", "5s"]``; ``exponential("1s", retries=4)`` is 1 s, 2 s, 4 s, 8 s;
``linear("30s", retries=3)`` is 30 s, 60 s, 90 s. ``jitter=0.1`` moves each forwarded record's delay by up to
±10 %, so that records that failed together do not all come due together.
"""

from __future__ import annotations

from dataclasses import dataclass

from kretry.durations import Duration, parse_duration
from kretry.errors import ConfigError
from kretry.topology import tiers

# Each tier is a topic, a consumer group and a thread: beyond this many a delay list is a mistake, not a policy.
# Fifty tiers of exponential backoff from 1 s already span longer than any Kafka retention.
MAX_TIERS = 50
# Consecutive equal delays share one tier (topology.tiers), so retries cost no topic each: a capped exponential
# tail may retry for a long time. Beyond this many, a record belongs in the DLQ and a person's hands.
MAX_RETRIES = 1000
# kretry-due-at is in milliseconds: a delay finer than that cannot be honoured.
PRECISION = 0.001
# The longest tier delay: a retry topic keeps records twice its delay, in retention.ms, a Java long the broker
# refuses beyond 2^63 ms; a delay past a year is a mistake well before that, so refuse it at registration.
MAX_DELAY = 365 * 86400.0


@dataclass(frozen=True)
class Backoff:
    delays: tuple[float, ...]
    jitter: float = 0.0


def _retries(retries: int, what: str) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(f"{what}: retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    return retries


def _jitter(jitter: float, what: str) -> float:
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
        raise ConfigError(f"{what}: jitter is a fraction from 0 to below 1 (0.1 = ±10%), got {jitter!r}")
    return float(jitter)


def checked(delays: tuple[float, ...], what: str) -> tuple[float, ...]:
    if len(delays) > MAX_RETRIES:
        raise ConfigError(f"{what}: {len(delays)} retries; at most {MAX_RETRIES}")
    count = len(tiers(delays))
    if count > MAX_TIERS:
        raise ConfigError(
            f"{what}: {count} retry tiers; at most {MAX_TIERS} (each distinct delay in a row is a topic; "
            "repeat a delay to retry more often without more topics)"
        )
    for i, delay in enumerate(delays):
        if 0 < delay < PRECISION:
            raise ConfigError(f"{what}: delays[{i}] = {delay}s is below kretry's precision of 1 ms")
        if delay > MAX_DELAY:
            raise ConfigError(
                f"{what}: delays[{i}] = {delay:g}s is longer than kretry's longest tier delay, "
                f"{MAX_DELAY / 86400:.0f}d (a retry topic keeps records twice its delay)"
            )
    return delays


def fixed(delay: Duration, retries: int, *, jitter: float = 0.0) -> Backoff:
    what = "fixed()"
    seconds = parse_duration(delay, what=f"{what} delay")
    return Backoff(checked((seconds,) * _retries(retries, what), what), _jitter(jitter, what))


def linear(step: Duration, retries: int, *, jitter: float = 0.0) -> Backoff:
    what = "linear()"
    seconds = parse_duration(step, what=f"{what} step")
    return Backoff(
        checked(tuple(seconds * n for n in range(1, _retries(retries, what) + 1)), what), _jitter(jitter, what)
    )


def exponential(
    initial: Duration,
    multiplier: float = 2.0,
    max_delay: Duration | None = None,
    *,
    retries: int,
    jitter: float = 0.0,
) -> Backoff:
    what = "exponential()"
    first = parse_duration(initial, what=f"{what} initial")
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not 1 <= multiplier <= 100:
        raise ConfigError(f"{what}: multiplier must be from 1 to 100, got {multiplier!r}")
    cap = None if max_delay is None else parse_duration(max_delay, what=f"{what} max_delay")
    if cap is not None and cap < first:
        raise ConfigError(f"{what}: max_delay {max_delay!r} is below initial {initial!r}")
    delays = []
    for n in range(_retries(retries, what)):
        delay = first * multiplier**n
        delays.append(delay if cap is None else min(delay, cap))
    return Backoff(checked(tuple(delays), what), _jitter(jitter, what))
