"""Prometheus metrics, in a registry of each worker's own: labels are topic (the main topic), stage, outcome.

Each stage counts into plain integers of its own, from its own thread, with no lock; a collector reads them at
scrape time. A prometheus_client Counter or Histogram takes a lock on every update, which on the per-record
path cost more than the rest of kretry's own work together.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# other_group: a record on a retry topic shared with another service (another group id), left to that service.
OUTCOMES = ("success", "retried", "dead_lettered", "dropped", "forward_failed", "other_group")
HANDLER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Buckets:
    """A histogram's counts; ``counts[i]`` holds observations up to ``bounds[i]``, the last one the rest."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        total = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), list(self.counts), strict=True):
            total += count
            out.append((bound, total))
        return out


class StageStats:
    """What one stage did, written only by the stage's own thread."""

    __slots__ = (
        "abandoned",
        "dead_lettered",
        "dropped",
        "forward_failed",
        "handler",
        "held",
        "lateness",
        "other_group",
        "paused",
        "retried",
        "stage",
        "success",
        "topic",
        "windowed",
    )

    def __init__(self, topic: str, stage: str) -> None:
        self.topic, self.stage = topic, stage
        self.success = self.retried = self.dead_lettered = self.dropped = self.forward_failed = 0
        self.other_group = 0
        self.abandoned = 0  # records left unhandled because a handler outlasted max.poll.interval.ms
        self.held = 0  # records held back from the DLQ by the flood guard
        self.paused = 0
        self.windowed = 0  # records a retry stage holds in memory until their due time
        self.handler = Buckets(HANDLER_BUCKETS)
        self.lateness = Buckets(LATENESS_BUCKETS)


LABELS = ["topic", "stage"]


class _StageCollector(Collector):
    def __init__(self, stages: list[StageStats]) -> None:
        self._stages = stages

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "kretry_messages", "Records handled, by outcome", labels=["topic", "stage", "outcome"]
        )
        handler = HistogramMetricFamily(
            "kretry_handler_seconds",
            "Time spent in the handler, every try of a record together",
            labels=["topic", "stage"],
        )
        lateness = HistogramMetricFamily(
            "kretry_delay_lateness_seconds",
            "How late a delayed record was handled: handled minus due",
            labels=["topic", "stage"],
        )
        # One number per stage each: (family, the StageStats attribute it reads).
        simple: list[tuple[GaugeMetricFamily | CounterMetricFamily, str]] = [
            (
                GaugeMetricFamily(
                    "kretry_paused_partitions", "Partitions paused until their next record is due", labels=LABELS
                ),
                "paused",
            ),
            (
                GaugeMetricFamily(
                    "kretry_window_records",
                    "Records a retry stage fetched before their due time and holds until it (kretry.stage.window)",
                    labels=LABELS,
                ),
                "windowed",
            ),
            (
                CounterMetricFamily(
                    "kretry_abandoned_records",
                    "Records left unhandled after a handler outlasted max.poll.interval.ms (fetched again)",
                    labels=LABELS,
                ),
                "abandoned",
            ),
            (
                CounterMetricFamily(
                    "kretry_dlq_guard_held_records",
                    "Records held back from the DLQ because the DLQ flood guard tripped",
                    labels=LABELS,
                ),
                "held",
            ),
        ]
        for s in list(self._stages):
            labels = [s.topic, s.stage]
            for outcome in OUTCOMES:
                messages.add_metric([*labels, outcome], getattr(s, outcome))
            for family, buckets in ((handler, s.handler), (lateness, s.lateness)):
                family.add_metric(labels, buckets.cumulative(), sum_value=buckets.sum)
            for metric, attribute in simple:
                metric.add_metric(labels, getattr(s, attribute))
        yield from (messages, handler, lateness, *(metric for metric, _ in simple))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._stages: list[StageStats] = []
        self.registry.register(_StageCollector(self._stages))
        self.kafka_errors = Counter(
            "kretry_kafka_errors",
            "Errors reported by the Kafka client",
            ["topic", "stage", "code"],
            registry=self.registry,
        )
        self.guard_tripped = Gauge(
            "kretry_dlq_guard_tripped",
            "1 while the DLQ flood guard holds records back from the DLQ, else 0",
            registry=self.registry,
        )
        self.dlq_records = Gauge(
            "kretry_dlq_records",
            "Records the DLQ holds: all of them, and those pending (neither replayed nor discarded)",
            ["state"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "kretry_consumer_lag",
            "Records between the stage's position and the end of its partitions",
            ["topic", "stage"],
            registry=self.registry,
        )

    def stage(self, topic: str, stage: str) -> StageStats:
        """The counters of one stage, created on first use."""
        for existing in self._stages:
            if (existing.topic, existing.stage) == (topic, stage):
                return existing
        stats = StageStats(topic, stage)
        self._stages.append(stats)
        return stats

    def count(self, topic: str, stage: str, outcome: str) -> int:
        """The current value of one counter, for tests and the demo."""
        value = self.registry.get_sample_value(
            "kretry_messages_total", {"topic": topic, "stage": stage, "outcome": outcome}
        )
        return int(value or 0)
