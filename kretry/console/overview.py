"""The overview: one row per stage of every topic's ladder, and the DLQ's. Lag and the oldest waiting record's age
come from ``kretry.admin.stats`` (what ``kretry stats`` prints); partitions, group members and end offsets from an
admin client. Rates are the change between two looks, so the first look has none."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from kretry import admin, config, dlq
from kretry.retrier import Retrier

TIMEOUT = 10.0


@dataclass(frozen=True)
class StageRow:
    topic: str  # the main topic whose ladder it is
    stage: str  # "main", "retry_1", ...
    stage_topic: str
    group: str
    delay: str  # how long records wait there ("-" for main)
    partitions: int | None  # None: the topic does not exist
    members: int | None  # consumers in the stage's group now; None: unknown
    lag: int  # records waiting: not yet done by the group, those waiting for their due time included
    oldest_age_s: float | None
    in_per_min: float | None  # records arriving on the stage's topic
    done_per_min: float | None  # records the group finished (handled, retried or dead-lettered)


@dataclass(frozen=True)
class DlqRow:
    topic: str
    total: int
    pending: int
    in_per_min: float | None


@dataclass(frozen=True)
class Look:
    at: float
    ends: Mapping[str, int]  # per topic, the sum of its partitions' end offsets
    done: Mapping[str, int]  # per stage group, the sum of its committed offsets (end minus lag)


def per_minute(before: int | None, after: int | None, seconds: float) -> float | None:
    """Pure: the change from ``before`` to ``after`` over ``seconds``, per minute; None without two looks."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0, after - before) * 60.0 / seconds


class Overview:
    """Looks at the cluster for a Retrier's stages; remembers the last look for the rates."""

    def __init__(self, retrier: Retrier, depth: Callable[[], dlq.Depth] | None = None) -> None:
        """``depth``: how the DLQ's depth is read (``kretry.dlq.depth`` unless given)."""
        self.retrier = retrier
        self._depth = depth or (lambda: dlq.depth(retrier.settings))
        self._last: Look | None = None
        self._lock = threading.Lock()

    @functools.cached_property
    def _admin(self) -> AdminClient:
        return AdminClient(config.admin_conf(self.retrier.settings))

    def look(self, now: float | None = None) -> tuple[list[StageRow], DlqRow | None]:
        now = time.time() if now is None else now
        stats = admin.stats(self.retrier, now)
        specs = self.retrier.stages()
        meta = self._admin.list_topics(timeout=TIMEOUT)
        widths = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        dlq_topic = self.retrier.dlq_topic
        topics = [s.topic for s in specs] + ([dlq_topic] if dlq_topic else [])
        ends = self._ends({t: widths[t] for t in dict.fromkeys(topics) if t in widths})
        members = self._members([s.group for s in specs])
        look = Look(
            now, ends, {s.group: ends.get(s.topic, 0) - st.lag for s, st in zip(specs, stats.stages, strict=True)}
        )
        with self._lock:
            last, self._last = self._last, look
        elapsed = 0.0 if last is None else now - last.at
        ends_before, done_before = (last.ends, last.done) if last is not None else ({}, {})
        rows = [
            StageRow(
                topic=st.topic,
                stage=st.stage,
                stage_topic=spec.topic,
                group=st.group,
                delay=admin.human_ms(round(spec.delay * 1000)) if spec.attempt else "-",
                partitions=widths.get(spec.topic),
                members=members.get(spec.group),
                lag=st.lag,
                oldest_age_s=st.oldest_age_s,
                in_per_min=per_minute(ends_before.get(spec.topic), ends.get(spec.topic), elapsed),
                done_per_min=per_minute(done_before.get(spec.group), look.done[spec.group], elapsed),
            )
            for spec, st in zip(specs, stats.stages, strict=True)
        ]
        if dlq_topic is None or dlq_topic not in widths:
            return rows, None
        depth = self._depth()
        into = per_minute(ends_before.get(dlq_topic), ends.get(dlq_topic), elapsed)
        return rows, DlqRow(dlq_topic, depth.total, depth.pending, into)

    def _ends(self, widths: Mapping[str, int]) -> dict[str, int]:
        tps = [TopicPartition(t, p) for t, n in widths.items() for p in range(n)]
        if not tps:
            return {}
        futures = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in tps},  # type: ignore[no-untyped-call]
            request_timeout=TIMEOUT,
        )
        out: dict[str, int] = {}
        for tp, future in futures.items():
            out[tp.topic] = out.get(tp.topic, 0) + int(future.result(timeout=TIMEOUT).offset)
        return out

    def _members(self, groups: list[str]) -> dict[str, int]:
        futures = self._admin.describe_consumer_groups(list(dict.fromkeys(groups)), request_timeout=TIMEOUT)
        return {group: len(future.result(timeout=TIMEOUT).members) for group, future in futures.items()}
