"""The topics a Retrier needs (plan, create, check) and how far behind its stages are (stats).

Retention, chosen and checked here:

* a retry topic must keep a record at least ``max(2 x its tier's delay, 1 day)``: the delay itself, plus an
  outage of the workers as long as the delay or a day, whichever is longer. Planned (and created) with
  ``max(2 x delay, 7 days)``.
* the DLQ must keep records at least 7 days: people read it, and a long weekend is 3 days. Planned with 14.
* the replay ledger ``<dlq>.replayed`` must be compacted (it is created so on the first replay, or here).
* the control topic ``<group_id>.control`` (operators' tier commands, kretry.control) keeps a command at least
  ``topology.control_horizon_ms``: twice the longest delay, a day at least; one partition, not compacted.
* retry topics and the DLQ must not be compacted (records with equal keys would vanish), and must be at least
  as wide as their main topic (the DLQ as the widest).
* a record that fits its main topic must fit its retry topics and the DLQ with kretry's headers added: their
  ``max.message.bytes`` is at least the main topic's (the DLQ: the largest) plus ``HEADROOM``.

``retention.ms=-1`` (keep forever) always passes. The main topics are the service's own: read, never changed.

Two services (group ids) that consume the same main topic share its retry topics. That works: a retry stage
handles only its own group's records. ``check`` notes it without failing: the services share the topics'
retention and partitions, which whoever sizes them should know.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from kretry import config, dlq
from kretry.errors import BrokerUnavailable, ConfigError, TopologyError
from kretry.retrier import HandlerSpec, Retrier
from kretry.stage import stage_label
from kretry.topology import TopicPlan, control_horizon_ms, control_topic, parse_retry_topic, plan_topics

log = structlog.get_logger("kretry")

DAY_MS = 86_400_000
RETRY_MIN_MS = DAY_MS
RETRY_PLANNED_MS = 7 * DAY_MS
DLQ_MIN_MS = 7 * DAY_MS
DLQ_PLANNED_MS = 14 * DAY_MS
LEDGER_ROLE = "ledger"
CONTROL_ROLE = "control"
# The broker's default max.message.bytes, for a topic that does not override it.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# Room for kretry's headers on top of a record that just fits its main topic: they come to at most about 1.6 KiB
# (a 1000-byte kretry-error, a topic name of up to 249 characters, the group, numbers), plus the batch overhead.
HEADROOM = 8192


@dataclass(frozen=True)
class TopicNeed:
    name: str
    role: str  # "main" | "retry" | "dlq" | "ledger" | "control"
    partitions: int  # as many as it should have at least
    source: str  # the main topic it serves; "" for the DLQ and its ledger
    retention_ms: int | None  # what to create it with; None: not kretry's to set
    min_retention_ms: int | None  # what `check` accepts at least
    cleanup: str | None  # "delete" | "compact"; None for main topics
    max_message_bytes: int | None = None  # the largest record it must take; None: not kretry's to set
    segment_ms: int | None = None  # a compacted topic's segment roll; None: the broker's (7 days)

    def topic_config(self) -> dict[str, str]:
        """The configs kretry creates the topic with."""
        conf = {}
        if self.retention_ms is not None:
            conf["retention.ms"] = str(self.retention_ms)
        if self.cleanup is not None:
            conf["cleanup.policy"] = self.cleanup
        if self.max_message_bytes is not None:
            conf["max.message.bytes"] = str(self.max_message_bytes)
        if self.segment_ms is not None:
            conf["segment.ms"] = str(self.segment_ms)
        return conf

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "partitions": self.partitions,
            "source": self.source,
            "retention_ms": self.retention_ms,
            "min_retention_ms": self.min_retention_ms,
            "cleanup_policy": self.cleanup,
            "max_message_bytes": self.max_message_bytes,
        }


def human_ms(ms: int | None) -> str:
    """``604800000`` -> ``"7d"``; the largest unit that divides it."""
    if ms is None:
        return "-"
    if ms < 0:
        return "forever"
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def needs(
    retrier: Retrier, main_partitions: Mapping[str, int], main_max_bytes: Mapping[str, int] | None = None
) -> list[TopicNeed]:
    """Pure: every topic ``retrier`` needs, given how wide its main topics are and the largest record each takes
    (``max.message.bytes``; the broker's default where not given)."""
    handlers = retrier.handlers
    sizes = {t: (main_max_bytes or {}).get(t, DEFAULT_MAX_MESSAGE_BYTES) for t in main_partitions}
    delays = {s.topic: s.delay for s in retrier.stages()}
    plans: list[TopicPlan] = plan_topics(
        main_partitions,
        {t: len(s.tiers) for t, s in handlers.items()},
        {t: s.retry_pattern for t, s in handlers.items()},
        retrier.dlq_topic,
    )
    out: list[TopicNeed] = []
    for p in plans:
        if p.role == "main":
            out.append(TopicNeed(p.name, "main", p.partitions, p.source, None, None, None))
        elif p.role == "retry":
            twice = int(2 * delays[p.name] * 1000)
            out.append(
                TopicNeed(
                    p.name,
                    "retry",
                    p.partitions,
                    p.source,
                    max(twice, RETRY_PLANNED_MS),
                    max(twice, RETRY_MIN_MS),
                    "delete",
                    sizes[p.source] + HEADROOM,
                )
            )
        else:
            largest = max(sizes.values(), default=DEFAULT_MAX_MESSAGE_BYTES) + HEADROOM
            out.append(TopicNeed(p.name, "dlq", p.partitions, "", DLQ_PLANNED_MS, DLQ_MIN_MS, "delete", largest))
            out.append(TopicNeed(dlq.ledger_topic(p.name), LEDGER_ROLE, 1, "", None, None, "compact"))
    horizon = control_horizon_ms(list(delays.values()))
    out.append(TopicNeed(control_topic(retrier.group_id), CONTROL_ROLE, 1, "", horizon, horizon, "delete"))
    return out


def problems_of(need: TopicNeed, partitions: int | None, configs: Mapping[str, str]) -> list[str]:
    """Pure: what is wrong with one topic as it is on the cluster (``partitions`` None: it does not exist)."""
    if partitions is None:
        if need.role == LEDGER_ROLE:
            return []  # created by the first replay
        return [f"{need.name}: missing ({need.role} topic; `kretry topics create` creates it)"]
    found: list[str] = []
    if partitions < need.partitions:
        found.append(f"{need.name}: {partitions} partitions, fewer than the {need.partitions} of its main topic")
    policy = configs.get("cleanup.policy", "delete")
    if need.cleanup == "compact" and "compact" not in policy:
        found.append(f"{need.name}: cleanup.policy={policy}, should be compact")
    if need.cleanup == "delete" and "compact" in policy:
        found.append(f"{need.name}: cleanup.policy={policy}; compaction would drop records that share a key")
    if need.max_message_bytes is not None:
        limit = _int_config(configs, "max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES)
        if limit < need.max_message_bytes:
            found.append(
                f"{need.name}: max.message.bytes={limit}, below the {need.max_message_bytes} a record of its main "
                "topic needs with kretry's headers; such records would reach the DLQ as stubs"
            )
    if need.min_retention_ms is not None:
        retention = _int_config(configs, "retention.ms", -1)
        if 0 <= retention < need.min_retention_ms:
            found.append(
                f"{need.name}: retention.ms={retention} ({human_ms(retention)}), "
                f"below the {human_ms(need.min_retention_ms)} a {need.role} topic needs"
            )
    return found


def _int_config(configs: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(configs.get(name, default))
    except ValueError:
        return default


class Cluster:
    """An admin client and the cluster's metadata, for one command."""

    def __init__(self, retrier: Retrier, timeout: float = 10.0) -> None:
        self.settings = retrier.settings
        self.retrier = retrier
        try:
            self.admin = AdminClient(config.admin_conf(self.settings))
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"kafka settings: {exc}") from None
        self.meta = self.refresh(timeout)

    def refresh(self, timeout: float = 10.0) -> ClusterMetadata:
        try:
            self.meta = self.admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"no answer from {self.settings.bootstrap_servers}: {exc}") from None
        return self.meta

    def width(self, topic: str) -> int | None:
        t = self.meta.topics.get(topic)
        return None if t is None or t.error is not None else len(t.partitions)

    def needs(self) -> list[TopicNeed]:
        widths = {t: self.width(t) for t in self.retrier.handlers}
        absent = sorted(t for t, w in widths.items() if w is None)
        if absent:
            raise TopologyError(
                f"main topic {', '.join(absent)} does not exist on {self.settings.bootstrap_servers}; "
                "kretry never creates the topics it reads from"
            )
        return needs(self.retrier, {t: w for t, w in widths.items() if w is not None}, self.max_bytes(list(widths)))

    def max_bytes(self, topics: list[str]) -> dict[str, int]:
        return max_message_bytes(self.admin, topics)

    def consumer_groups(self, timeout: float = 30.0) -> list[str]:
        try:
            listing = self.admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"listing consumer groups on {self.settings.bootstrap_servers}: {exc}") from None
        return [g.group_id for g in listing.valid]

    def configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        return topic_configs(self.admin, names)


def topic_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """The configs of existing topics, as the broker reports them."""
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    out: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=30)
        out[resource.name] = {k: str(e.value) for k, e in entries.items() if e.value is not None}
    return out


def max_message_bytes(admin: AdminClient, topics: list[str]) -> dict[str, int]:
    """Each topic's max.message.bytes: the largest record it takes."""
    configs = topic_configs(admin, topics)
    return {t: _int_config(configs.get(t, {}), "max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES) for t in topics}


def create_topics(admin: AdminClient, todo: Iterable[TopicNeed], timeout: float = 30.0) -> None:
    """Create topics with their retention and cleanup policy, accepting ones another worker created meanwhile,
    and wait until every partition has a leader."""
    todo = list(todo)
    if not todo:
        return
    futures = admin.create_topics(
        [NewTopic(n.name, num_partitions=n.partitions, replication_factor=-1, config=n.topic_config()) for n in todo],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopologyError(f"creating topic {name!r} failed: {exc.args[0].str()}") from None
        else:
            log.info("topic created", topic=name)
    deadline = time.monotonic() + timeout
    names = {n.name for n in todo}
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        if all(
            n in meta.topics
            and meta.topics[n].partitions
            and all(p.leader >= 0 for p in meta.topics[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.1)
    raise TopologyError(f"topics {sorted(names)} have no leader {timeout:.0f}s after being created")


@dataclass(frozen=True)
class Planned:
    """One row of ``kretry topics plan``: a topic kretry needs, how long records wait there, and how wide it is."""

    need: TopicNeed
    partitions: int | None  # None: as wide as a main topic that does not exist yet
    delay_s: float | None = None  # a retry tier's delay; None for the other roles
    jitter: float = 0.0
    attempts: tuple[int, int] | None = None  # a retry tier's first and last attempt; None for the other roles

    @property
    def delay(self) -> str | None:
        """``"5s"``, ``"1m±10%"``."""
        if self.delay_s is None:
            return None
        return human_ms(round(self.delay_s * 1000)) + (f"±{self.jitter * 100:g}%" if self.jitter else "")

    def to_json(self) -> dict[str, Any]:
        first, last = self.attempts or (None, None)
        return {
            **self.need.to_json(),
            "partitions": self.partitions,
            "delay_s": self.delay_s,
            "first_attempt": first,
            "last_attempt": last,
        }


def planned(
    all_needs: Iterable[TopicNeed],
    delays: Mapping[str, tuple[float, float]],
    missing: Iterable[str],
    partitions: int | None,
    attempts: Mapping[str, tuple[int, int]] | None = None,
) -> list[Planned]:
    """Pure: the plan's rows. ``delays`` maps a retry topic to (delay, jitter), ``attempts`` to its first and last
    attempt; a topic as wide as a ``missing`` main topic (itself, its retry topics, the DLQ) has an unknown width
    unless ``partitions`` stands in for it."""
    absent = set(missing)
    rows = []
    for n in all_needs:
        unknown = partitions is None and (n.source in absent or (n.role == "dlq" and bool(absent)))
        delay, jitter = delays.get(n.name, (None, 0.0))
        rows.append(Planned(n, None if unknown else n.partitions, delay, jitter, (attempts or {}).get(n.name)))
    return rows


def shared_tier_notes(rows: Iterable[Planned]) -> list[str]:
    """Pure: a note for each retry topic that several attempts share (equal delays in a row)."""
    return [
        f"{r.need.name}: attempts {r.attempts[0]}-{r.attempts[1]} share this topic, {r.delay} apart "
        "(equal delays in a row are one tier; each record carries its attempt in kretry-attempt)"
        for r in rows
        if r.attempts is not None and r.attempts[1] > r.attempts[0]
    ]


def plan(retrier: Retrier, partitions: int | None = None) -> tuple[list[Planned], list[str]]:
    """Every topic kretry needs, and notes. A plan is for before the topics exist, too: a main topic that does not
    exist yet is planned ``partitions`` wide, or its width is left unknown."""
    cluster = Cluster(retrier)
    widths = {t: cluster.width(t) for t in retrier.handlers}
    missing = [t for t, w in widths.items() if w is None]
    assumed = {t: (partitions or 1) if w is None else w for t, w in widths.items()}
    retries = [s for s in retrier.stages() if s.attempt]
    delays = {s.topic: (s.delay, s.handler.policy.jitter) for s in retries}
    attempts = {s.topic: (s.attempt, s.last_attempt) for s in retries}
    sizes = cluster.max_bytes([t for t in widths if t not in missing])
    how = "? is as wide as it will be (--partitions N plans with N)"
    if partitions is not None:
        how = f"planned {partitions} partitions wide (--partitions)"
    notes = [f"main topic {t} does not exist yet; {how}" for t in missing]
    rows = planned(needs(retrier, assumed, sizes), delays, missing, partitions, attempts)
    return rows, notes + shared_tier_notes(rows)


def shared_retry_topics(group_id: str, retry_topics: Iterable[str], groups: Iterable[str]) -> list[str]:
    """Pure: a note for each retry topic that another service's retry stage (group ``<its id>.<topic>``) reads."""
    notes = []
    for topic in retry_topics:
        for group in sorted(groups):
            other = group.removesuffix(f".{topic}")
            if other != group and other and other != group_id:
                notes.append(
                    f"{topic}: also consumed by group {other} ({group}); each service handles only its own "
                    "records, but they share the topic's retention and partitions"
                )
    return notes


def stranded_names(handlers: Mapping[str, HandlerSpec], existing: Iterable[str]) -> list[str]:
    """Pure: the existing retry topics of a handler that no stage reads: its schedule has fewer tiers now (equal
    delays in a row came to share one, or delays were dropped)."""
    found = []
    for name in sorted(existing):
        for topic, spec in handlers.items():
            parsed = parse_retry_topic(name, spec.retry_pattern)
            if parsed is not None and parsed[0] == topic and parsed[1] > len(spec.tiers):
                found.append(name)
    return found


def stranded_retry_topics(handlers: Mapping[str, HandlerSpec], existing: Iterable[str]) -> list[str]:
    """Pure: a note for each retry topic no stage reads. Records still on it are never retried."""
    notes = []
    for name in stranded_names(handlers, existing):
        topic, _ = next(
            (t, n) for t, spec in handlers.items() if (n := parse_retry_topic(name, spec.retry_pattern)) is not None
        )
        count = len(handlers[topic].tiers)
        tiers = f"{count} retry tier{'' if count == 1 else 's'}"
        notes.append(
            f"{name}: no stage reads it, {topic} has {tiers}; records still on it are not retried "
            "(let the old schedule drain it first; delete it once it is empty)"
        )
    return notes


@dataclass(frozen=True)
class Check:
    problems: list[str]  # one line each; any of them fails `kretry topics check`
    notes: list[str]  # worth knowing, not wrong


def check(retrier: Retrier) -> Check:
    """What is wrong with the topics kretry needs (nothing when every one is as it needs it), and what is notable."""
    cluster = Cluster(retrier)
    todo = [n for n in cluster.needs() if n.role != "main"]
    configs = cluster.configs([n.name for n in todo if cluster.width(n.name) is not None])
    found: list[str] = []
    for need in todo:
        found.extend(problems_of(need, cluster.width(need.name), configs.get(need.name, {})))
    retry_topics = [n.name for n in todo if n.role == "retry"]
    notes = shared_retry_topics(retrier.group_id, retry_topics, cluster.consumer_groups())
    return Check(found, notes + stranded_retry_topics(retrier.handlers, cluster.meta.topics))


def create(retrier: Retrier) -> list[TopicNeed]:
    """Create the missing retry topics, DLQ, ledger and control topic, with their retention; return what was
    created."""
    cluster = Cluster(retrier)
    todo = [n for n in cluster.needs() if n.role != "main" and cluster.width(n.name) is None]
    create_topics(cluster.admin, [n for n in todo if n.role != LEDGER_ROLE])
    for n in todo:
        if n.role == LEDGER_ROLE and retrier.dlq_topic is not None:
            dlq.ensure_ledger(cluster.admin, retrier.dlq_topic)
    return todo


# -- stats --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageStats:
    topic: str
    stage: str
    group: str
    lag: int
    oldest_age_s: float | None  # age of the oldest record the group has yet to finish; None when none waits

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "stage": self.stage,
            "group": self.group,
            "lag": self.lag,
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 3),
        }


@dataclass(frozen=True)
class Stats:
    stages: list[StageStats]
    dlq_topic: str | None
    dlq_depth: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [s.to_json() for s in self.stages],
            "dlq": {"topic": self.dlq_topic, "depth": self.dlq_depth},
        }


def stats(retrier: Retrier, now: float | None = None) -> Stats:
    """Lag (committed offset vs end) and the age of the oldest waiting record of every stage; DLQ depth."""
    cluster = Cluster(retrier)
    settings = retrier.settings
    reader_conf = config.consumer_conf(settings, f"kretry-stats-{uuid.uuid4().hex[:8]}", main=False)
    reader = Consumer({**reader_conf, "enable.auto.commit": False})
    now = time.time() if now is None else now
    try:
        out = []
        for spec in retrier.stages():
            width = cluster.width(spec.topic)
            if width is None:
                out.append(StageStats(spec.handler.topic, stage_label(spec.number), spec.group, 0, None))
                continue
            lag, oldest = _stage_lag(settings, reader, spec.group, spec.topic, width)
            age = None if oldest is None else max(0.0, now - oldest / 1000.0)
            out.append(StageStats(spec.handler.topic, stage_label(spec.number), spec.group, lag, age))
        depth = None
        dlq_width = cluster.width(retrier.dlq_topic) if retrier.dlq_topic else None
        if retrier.dlq_topic and dlq_width is not None:
            depth = 0
            for p in range(dlq_width):
                low, high = reader.get_watermark_offsets(TopicPartition(retrier.dlq_topic, p), timeout=10)
                depth += high - low
        return Stats(out, retrier.dlq_topic, depth)
    finally:
        reader.close()


def _stage_lag(
    settings: config.Settings, reader: Consumer, group: str, topic: str, width: int
) -> tuple[int, int | None]:
    """(records between the group's committed offsets and the end, timestamp ms of the oldest of them)."""
    conf = config.consumer_conf(settings, group, main=False)
    probe = Consumer({**conf, "enable.auto.commit": False})  # reads the group's offsets; never joins, never commits
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in range(width)], timeout=10)
    finally:
        probe.close()
    lag = 0
    oldest: int | None = None
    for tp in committed:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        start = tp.offset if tp.offset >= 0 else low
        start = max(start, low)
        if start >= high:
            continue
        lag += high - start
        ts = _timestamp_at(reader, topic, tp.partition, start)
        if ts is not None:
            oldest = ts if oldest is None else min(oldest, ts)
    return lag, oldest


def _timestamp_at(reader: Consumer, topic: str, partition: int, offset: int, timeout: float = 10.0) -> int | None:
    reader.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and msg.error() is None:
                ts: int = msg.timestamp()[1]
                return ts
        return None
    finally:
        reader.unassign()
