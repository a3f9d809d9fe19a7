"""Pure naming of everything kretry creates: retry topics, consumer groups, and the plan of topics to create."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from kretry.errors import ConfigError

DEFAULT_RETRY_PATTERN = "{topic}_retry_{attempt}"
DEFAULT_DLQ_TOPIC = "dead_letter_queue"
MAX_TOPIC_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")


def validate_topic_name(name: str, *, what: str = "topic") -> str:
    """Kafka's own rules for a topic name, checked before the broker refuses it."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: a topic name must be a non-empty string, got {name!r}")
    if name in (".", ".."):
        raise ConfigError(f"{what}: {name!r} is not a legal topic name")
    if len(name) > MAX_TOPIC_LENGTH:
        raise ConfigError(f"{what}: {name[:40]!r}... is longer than Kafka's {MAX_TOPIC_LENGTH} characters")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise ConfigError(f"{what}: {name!r} may contain only ASCII letters, digits, '.', '_' and '-'")
    return name


def validate_pattern(pattern: str) -> str:
    """A retry-topic pattern must name both the topic and the attempt, and nothing else."""
    fields = set(re.findall(r"{([^{}]*)}", pattern))
    if fields != {"topic", "attempt"} or pattern.count("{topic}") != 1 or pattern.count("{attempt}") != 1:
        raise ConfigError(
            f"retry_topic: {pattern!r} must contain '{{topic}}' and '{{attempt}}' exactly once and no other field"
        )
    validate_topic_name(pattern.format(topic="t", attempt=1), what=f"retry_topic {pattern!r}")
    for topic, attempt in (("orders", 12), ("a_retry_1", 3), ("x1", 10), ("2fa", 1)):
        if parse_retry_topic(retry_topic(topic, attempt, pattern), pattern) != (topic, attempt):
            raise ConfigError(f"retry_topic: {pattern!r} is ambiguous; put a separator between topic and attempt")
    return pattern


def retry_topic(topic: str, attempt: int, pattern: str = DEFAULT_RETRY_PATTERN) -> str:
    """``retry_topic("orders", 2) == "orders_retry_2"``: where a record goes for its ``attempt``-th retry."""
    if attempt < 1:
        raise ValueError(f"retry attempts count from 1, got {attempt}")
    return pattern.format(topic=topic, attempt=attempt)


def parse_retry_topic(name: str, pattern: str = DEFAULT_RETRY_PATTERN) -> tuple[str, int] | None:
    """The inverse of :func:`retry_topic`: ``("orders", 2)`` for ``"orders_retry_2"``, None for other names."""
    regex = (
        re.escape(pattern).replace(r"\{topic\}", "(?P<topic>.+)").replace(r"\{attempt\}", "(?P<attempt>[1-9][0-9]*)")
    )
    match = re.fullmatch(regex, name)
    if match is None:
        return None
    return match.group("topic"), int(match.group("attempt"))


def stage_topics(topic: str, tiers: int, pattern: str = DEFAULT_RETRY_PATTERN) -> list[str]:
    """The topic of each stage, main first: ``[T, T_retry_1, ..., T_retry_N]`` for N retry tiers."""
    return [topic] + [retry_topic(topic, n, pattern) for n in range(1, tiers + 1)]


@dataclass(frozen=True)
class Tier:
    """One retry topic and its stage: ``<T>_retry_<number>`` handles attempts ``first`` to ``last``, each after
    waiting ``delay`` seconds there. Attempts count the tries made before (0: the main topic)."""

    number: int
    first: int
    last: int
    delay: float

    @property
    def shared(self) -> bool:
        """More than one attempt loops on this topic, each carrying its number in ``kretry-attempt``."""
        return self.last > self.first


def tiers(delays: Sequence[float]) -> list[Tier]:
    """The retry tiers of a delay schedule: consecutive equal delays share one tier (Spring Kafka's single-topic
    reuse), so that ``["1s", "10s"] + ["1m"] * 100`` needs three topics and three consumers, not a hundred and two.
    A schedule without repeats has one tier per delay: exactly the topics it always had."""
    out: list[Tier] = []
    for attempt, delay in enumerate(delays, start=1):
        if out and out[-1].delay == delay:
            out[-1] = replace(out[-1], last=attempt)
        else:
            out.append(Tier(len(out) + 1, attempt, attempt, delay))
    return out


def attempt_topics(topic: str, delays: Sequence[float], pattern: str = DEFAULT_RETRY_PATTERN) -> list[str]:
    """The topic each attempt is handled on, indexed by attempt: ``[T, T_retry_1, T_retry_2, T_retry_2]`` for
    ``delays=[1, 5, 5]``. Where a failed attempt n goes is entry n + 1: its own topic again within a shared tier."""
    out = [topic]
    for tier in tiers(delays):
        out.extend([retry_topic(topic, tier.number, pattern)] * (tier.last - tier.first + 1))
    return out


def stage_attempt(first: int, last: int, carried: int | None) -> int:
    """The attempt a record on the topic of attempts ``first``..``last`` is at, from its ``kretry-attempt`` (the
    attempts made so far, ``carried``). A tier of one attempt needs no header, as before tiers were shared. Absent
    or unreadable, the tier's first attempt: the record is retried at least as often as its schedule says, never
    less. Beyond the tier (the schedule shortened while records waited), its last: it has made that many."""
    if carried is None:
        return first
    return min(max(carried, first), last)


def stage_group(group_id: str, stage_topic: str, attempt: int) -> str:
    """The consumer group of a stage.

    Every retry stage has a group of its own so that its rebalances and its waiting never stall another stage;
    the main stages keep the service's group id, the one its operators already know.
    """
    return group_id if attempt == 0 else f"{group_id}.{stage_topic}"


CONTROL_SUFFIX = ".control"


def control_topic(group_id: str) -> str:
    """``control_topic("orders-service") == "orders-service.control"``: where operators' tier commands (flush, kill)
    for one retrier's running stages go (kretry.control)."""
    return f"{group_id}{CONTROL_SUFFIX}"


def control_horizon_ms(delays: Sequence[float]) -> int:
    """How far back a starting worker reads the control topic, and how long the topic keeps a command at least:
    twice the longest tier delay, and a day at least. A record that still waits was produced less than its tier's
    delay ago (RetryLater and backoff aside), so a command older than that covers nothing that still waits."""
    return max(int(2 * max(delays, default=0.0) * 1000), 86_400_000)


def check_collisions(retries: Mapping[str, int], patterns: Mapping[str, str], dlq_topic: str | None) -> None:
    """Every topic a retrier reads or writes must have exactly one role."""
    owner: dict[str, str] = {}
    if dlq_topic is not None:
        owner[dlq_topic] = "the DLQ"
    for topic, count in retries.items():
        for attempt, name in enumerate(stage_topics(topic, count, patterns[topic])):
            role = f"handler {topic!r}" if attempt == 0 else f"retry {attempt} of {topic!r}"
            validate_topic_name(name, what=role)
            if name in owner:
                raise ConfigError(f"topic {name!r} would be both {owner[name]} and {role}")
            owner[name] = role


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    role: str  # "main" | "retry" | "dlq"
    source: str  # the main topic it serves; the DLQ's is ""


def plan_topics(
    main_partitions: Mapping[str, int],
    retries: Mapping[str, int],
    patterns: Mapping[str, str],
    dlq_topic: str | None,
) -> list[TopicPlan]:
    """Every topic a retrier needs: retry topics as wide as their main topic, the DLQ as wide as the widest."""
    plans: list[TopicPlan] = []
    for topic, count in retries.items():
        width = main_partitions[topic]
        plans.append(TopicPlan(topic, width, "main", topic))
        plans.extend(TopicPlan(name, width, "retry", topic) for name in stage_topics(topic, count, patterns[topic])[1:])
    if dlq_topic is not None:
        plans.append(TopicPlan(dlq_topic, max(main_partitions.values(), default=1), "dlq", ""))
    return plans
