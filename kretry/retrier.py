"""The Retrier: settings and a registry of handlers, one per main topic. No I/O happens here."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from kretry import config, masking
from kretry.backoff import Backoff, checked
from kretry.durations import Duration, parse_duration
from kretry.errors import ConfigError
from kretry.guard import DlqGuard
from kretry.masking import Mask
from kretry.policy import ExceptionTypes, Exhausted, Policy
from kretry.serde import Deserializer
from kretry.topology import (
    DEFAULT_RETRY_PATTERN,
    Tier,
    attempt_topics,
    check_collisions,
    stage_group,
    stage_topics,
    tiers,
    validate_pattern,
    validate_topic_name,
)

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

# Retrying in place holds up the partition: beyond this, a record belongs on a retry topic.
MAX_LOCAL_RETRY_SECONDS = 30.0
MAX_CONCURRENCY = 1000
DEFAULT_CONCURRENCY = 10
# Which records of an async handler's batch wait for which: those of one key in a partition ("key"), those of one
# partition ("partition"), none ("none"). Records are handled in offset order within what waits.
Ordering = Literal["key", "partition", "none"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class HandlerSpec:
    topic: str
    func: Handler
    policy: Policy
    retry_pattern: str
    local_retries: int = 0
    local_backoff: float = 0.1
    value_deserializer: Deserializer | None = None
    concurrency: int = 1  # async handlers: records of one batch in flight at once
    key_deserializer: Deserializer | None = None
    ordering: Ordering = "key"

    @property
    def is_async(self) -> bool:
        """An ``async def``, also behind ``functools.wraps`` decorators, so that it runs batched and concurrently."""
        try:
            inner = inspect.unwrap(self.func)
        except ValueError:  # a __wrapped__ cycle: only the outer callable can tell
            inner = self.func
        return inspect.iscoroutinefunction(self.func) or inspect.iscoroutinefunction(inner)

    @property
    def tiers(self) -> list[Tier]:
        return tiers(self.policy.delays)

    @property
    def stage_topics(self) -> list[str]:
        """The main topic, then one retry topic per tier."""
        return stage_topics(self.topic, len(self.tiers), self.retry_pattern)

    @property
    def attempt_topics(self) -> list[str]:
        """The topic of every attempt, indexed by attempt (equal delays in a row share one)."""
        return attempt_topics(self.topic, self.policy.delays, self.retry_pattern)


@dataclass(frozen=True)
class StageSpec:
    """One consume loop: the main topic (attempt 0) or its retry topic n, with the delay records wait there.

    ``attempt`` is the first attempt it handles; a tier of equal delays handles up to ``last`` on one topic, each
    record's own attempt read from its ``kretry-attempt``.
    """

    handler: HandlerSpec
    attempt: int
    topic: str
    group: str
    delay: float
    last: int | None = None  # None: the stage handles ``attempt`` only
    tier: int | None = None  # n of its topic ``<T>_retry_<n>``; None: its attempt, as when every tier has one

    @property
    def last_attempt(self) -> int:
        return self.attempt if self.last is None else self.last

    @property
    def shared(self) -> bool:
        return self.last_attempt > self.attempt

    @property
    def number(self) -> int:
        """0 for the main stage, n for retry topic n: what its metrics and logs call it (``retry_<n>``)."""
        return self.attempt if self.tier is None else self.tier


def parse_delays(delays: Iterable[Duration] | Backoff, *, topic: str) -> Backoff:
    """A delay list or a backoff helper's result, checked: one entry per retry tier."""
    if isinstance(delays, Backoff):
        return delays
    if isinstance(delays, (str, bytes)) or not isinstance(delays, Iterable):
        raise ConfigError(
            f"handler {topic!r}: delays must be a list of durations or kretry.fixed/linear/exponential(...), "
            f"got {delays!r}"
        )
    parsed = tuple(parse_duration(d, what=f"handler {topic!r}: delays[{i}]") for i, d in enumerate(delays))
    return Backoff(checked(parsed, f"handler {topic!r}"))


def _whole(value: Any, low: int, high: int, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{what}: a whole number from {low} to {high}, got {value!r}")
    return value


def _exception_types(value: Any, *, what: str) -> ExceptionTypes:
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(t, type) and issubclass(t, BaseException) for t in items):
        raise ConfigError(f"{what}: expected an exception class or a tuple of them, got {value!r}")
    return items


def _check_overlap(retry_on: ExceptionTypes, dead_letter_on: ExceptionTypes, *, what: str) -> None:
    """A ``retry_on`` class that a ``dead_letter_on`` class always catches (itself or a base) is never retried:
    dead_letter_on is looked at first. The other way round (dead-letter a subclass of a retried class) is a
    legitimate carve-out."""
    for r in retry_on:
        caught = [d for d in dead_letter_on if issubclass(r, d)]
        if caught:
            raise ConfigError(
                f"{what}: retry_on: {r.__name__} is never retried, dead_letter_on {caught[0].__name__} catches it "
                "first; drop it from one of the two"
            )


class Retrier:
    """Wires each registered topic to its retry topics and the shared DLQ.

    ``Retrier(group_id="orders-service")``; bootstrap_servers, dlq_topic (None: no DLQ) and kafka (librdkafka
    settings) are optional and win over the ``KRETRY_*`` environment. ``exactly_once=True`` writes each stage's
    forwards and offsets in one Kafka transaction per batch (README: Exactly-once hops). ``mask`` (field names, or a
    callable) hides payload fields in ``kretry console`` and the worker's ``/v1/dead_set`` (kretry.masking).
    """

    def __init__(
        self,
        group_id: str | None = None,
        *,
        bootstrap_servers: str | None = None,
        dlq_topic: str | None = UNSET,
        kafka: Mapping[str, Any] | None = None,
        dlq_guard: DlqGuard | None = None,
        exactly_once: bool | None = None,
        mask: Mask | None = None,
    ) -> None:
        overrides: dict[str, Any] = {
            "exactly_once": exactly_once,
            "group_id": group_id,
            "bootstrap_servers": bootstrap_servers,
            "kafka": dict(kafka) if kafka is not None else None,
            # None here means "no DLQ", which the settings spell as an empty name.
            "dlq_topic": None if dlq_topic is UNSET else (dlq_topic or ""),
        }
        self.settings = config.load(overrides)
        if self.settings.group_id is None:
            raise ConfigError("group_id: required; pass Retrier(group_id=...) or set KRETRY_GROUP_ID")
        self.group_id: str = self.settings.group_id
        if dlq_guard is not None and not isinstance(dlq_guard, DlqGuard):
            raise ConfigError(f"dlq_guard: expected kretry.DlqGuard(...), got {dlq_guard!r}")
        if dlq_guard is not None and self.settings.dlq_topic is None:
            raise ConfigError("dlq_guard: there is no DLQ to guard (dlq_topic=None)")
        self.dlq_guard = None if dlq_guard is None else dlq_guard.checked()
        # What `kretry console` and /v1/dead_set hide of a record's value and headers (kretry.masking); the records
        # are untouched.
        self.mask: Mask | None = masking.checked(mask)
        self._handlers: dict[str, HandlerSpec] = {}

    @property
    def dlq_topic(self) -> str | None:
        return self.settings.dlq_topic

    @property
    def handlers(self) -> Mapping[str, HandlerSpec]:
        return dict(self._handlers)

    def handler(
        self,
        topic: str,
        *,
        delays: Sequence[Duration] | Backoff = (),
        retry_topic: str = DEFAULT_RETRY_PATTERN,
        dead_letter_on: type[BaseException] | ExceptionTypes = (),
        retry_on: type[BaseException] | ExceptionTypes | None = None,
        max_age: Duration | None = None,
        on_exhausted: Exhausted | None = None,
        local_retries: int = 0,
        local_backoff: Duration = "100ms",
        value_deserializer: Deserializer | None = None,
        concurrency: int = UNSET,
        key_deserializer: Deserializer | None = None,
        ordering: Ordering = "key",
    ) -> Callable[[F], F]:
        """Register ``func(msg)`` for ``topic``: return means success, an exception means failure.

        ``delays`` has one entry per retry tier (``["5s", "1m"]``: two retry topics, then the DLQ), or is
        ``kretry.fixed/linear/exponential(...)``. ``local_retries`` retries in place first, ``local_backoff``
        apart. ``value_deserializer`` makes ``msg.value`` and ``key_deserializer`` ``msg.key``; one that raises
        sends the record to the DLQ. ``concurrency`` (default 10) bounds how many records of a batch an
        ``async def`` handler has in flight; ``ordering`` which of them wait for each other: "key" (records of one
        key, in offset order), "partition" (records of one partition) or "none".
        """
        what = f"handler {topic!r}"
        validate_topic_name(topic, what="handler")
        if topic in self._handlers:
            raise ConfigError(f"handler {topic!r}: a handler for this topic is already registered")
        exhausted = on_exhausted or ("dead_letter" if self.dlq_topic else None)
        if exhausted is None:
            raise ConfigError(f"handler {topic!r}: without a DLQ, on_exhausted must be 'drop' or 'stop'")
        if exhausted not in ("dead_letter", "drop", "stop"):
            raise ConfigError(f"handler {topic!r}: on_exhausted must be 'dead_letter', 'drop' or 'stop'")
        if exhausted == "dead_letter" and not self.dlq_topic:
            raise ConfigError(f"handler {topic!r}: on_exhausted='dead_letter' needs a dlq_topic")
        backoff = parse_delays(delays, topic=topic)
        local = _whole(local_retries, 0, 100, what=f"{what}: local_retries")
        local_pause = parse_duration(local_backoff, what=f"{what}: local_backoff")
        if local * local_pause > MAX_LOCAL_RETRY_SECONDS:
            raise ConfigError(
                f"{what}: local_retries x local_backoff = {local * local_pause:.1f}s holds the partition too long "
                f"(at most {MAX_LOCAL_RETRY_SECONDS:.0f}s); use a retry tier instead"
            )
        if value_deserializer is not None and not callable(value_deserializer):
            raise ConfigError(f"{what}: value_deserializer must be callable, got {value_deserializer!r}")
        dead_on = _exception_types(dead_letter_on, what=f"{what}: dead_letter_on") if dead_letter_on else ()
        retry_types = None if retry_on is None else _exception_types(retry_on, what=f"{what}: retry_on")
        _check_overlap(retry_types or (), dead_on, what=what)
        if key_deserializer is not None and not callable(key_deserializer):
            raise ConfigError(f"{what}: key_deserializer must be callable, got {key_deserializer!r}")
        if ordering not in get_args(Ordering):
            raise ConfigError(f"{what}: ordering must be 'key', 'partition' or 'none', got {ordering!r}")
        policy = Policy(
            delays=backoff.delays,
            jitter=backoff.jitter,
            dead_letter_on=dead_on,
            retry_on=retry_types,
            max_age=None if max_age is None else parse_duration(max_age, what=f"handler {topic!r}: max_age"),
            on_exhausted=exhausted,
        )
        pattern = validate_pattern(retry_topic)

        def register(func: F) -> F:
            if not callable(func):
                raise ConfigError(f"handler {topic!r}: {func!r} is not callable")
            spec = HandlerSpec(
                topic,
                func,
                policy,
                pattern,
                local_retries=local,
                local_backoff=local_pause,
                value_deserializer=value_deserializer,
                concurrency=DEFAULT_CONCURRENCY
                if concurrency is UNSET
                else _whole(concurrency, 1, MAX_CONCURRENCY, what=f"{what}: concurrency"),
                key_deserializer=key_deserializer,
                ordering=ordering,
            )
            if concurrency is not UNSET and not spec.is_async:
                raise ConfigError(
                    f"{what}: concurrency={concurrency!r} applies to an async def handler only; "
                    f"{getattr(func, '__name__', func)!r} runs one record at a time"
                )
            candidate = {**self._handlers, topic: spec}
            check_collisions(
                {t: len(s.tiers) for t, s in candidate.items()},
                {t: s.retry_pattern for t, s in candidate.items()},
                self.dlq_topic,
            )
            self._handlers[topic] = spec
            return func

        return register

    def stages(self) -> list[StageSpec]:
        """Every consume loop this retrier runs, main stages first: one per retry tier, not per attempt."""
        stages = []
        for spec in self._handlers.values():
            stages.append(StageSpec(spec, 0, spec.topic, stage_group(self.group_id, spec.topic, 0), 0.0, 0, 0))
            for tier, name in zip(spec.tiers, spec.stage_topics[1:], strict=True):
                group = stage_group(self.group_id, name, tier.first)
                stages.append(StageSpec(spec, tier.first, name, group, tier.delay, tier.last, tier.number))
        return sorted(stages, key=lambda s: s.number)

    def __repr__(self) -> str:
        return f"Retrier(group_id={self.group_id!r}, topics={list(self._handlers)}, dlq_topic={self.dlq_topic!r})"
