"""Prometheus metrics, in a registry of each worker's own: labels are topic (the main topic), stage, outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("success", "retried", "dead_lettered", "dropped", "forward_failed")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "kretry_messages",
            "Records handled, by outcome",
            ["topic", "stage", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "kretry_handler_seconds",
            "Time spent in the handler",
            ["topic", "stage"],
            registry=self.registry,
        )
        self.lateness = Histogram(
            "kretry_delay_lateness_seconds",
            "How late a delayed record was handled: handled minus due",
            ["topic", "stage"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.paused = Gauge(
            "kretry_paused_partitions",
            "Partitions paused until their next record is due",
            ["topic", "stage"],
            registry=self.registry,
        )
        self.kafka_errors = Counter(
            "kretry_kafka_errors",
            "Errors reported by the Kafka client",
            ["topic", "stage", "code"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "kretry_consumer_lag",
            "Records between the stage's position and the end of its partitions",
            ["topic", "stage"],
            registry=self.registry,
        )

    def count(self, topic: str, stage: str, outcome: str) -> int:
        """The current value of one counter, for tests and the demo."""
        value = self.registry.get_sample_value(
            "kretry_messages_total", {"topic": topic, "stage": stage, "outcome": outcome}
        )
        return int(value or 0)
