"""The gateway's metrics, in a registry of their own (served at /metrics with kretry's process figures)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Accepting waits for one or three round trips to the broker: milliseconds, up to the accept timeout.
ACCEPT_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.posts = Counter(
            "kretry_gateway_posts",
            "POST /v1/event answers, by identifier and status",
            ["identifier", "status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "kretry_gateway_deliveries",
            "Delivery attempts to one integration, by identifier, integration type and outcome "
            "(delivered, failed: retried later, refused: dead-lettered)",
            ["identifier", "type", "outcome"],
            registry=self.registry,
        )
        self.decided = Counter(
            "kretry_gateway_posts_decided",
            "POST /v1/event by where its count was decided: here (this instance owns the event's partition: one "
            "round trip to the broker) or owner (another instance, through the requests topic: three)",
            ["where"],
            registry=self.registry,
        )
        self.accept_seconds = Histogram(
            "kretry_gateway_accept_seconds",
            "Time to answer POST /v1/event",
            buckets=ACCEPT_BUCKETS,
            registry=self.registry,
        )
        self.lateness_seconds = Histogram(
            "kretry_gateway_delivery_lateness_seconds",
            "How long after its due time a delivery attempt started",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )

    def delivered(self, identifier: str, kind: str, outcome: str) -> None:
        self.deliveries.labels(identifier, kind, outcome).inc()

    def late(self, seconds: float) -> None:
        self.lateness_seconds.observe(seconds)
