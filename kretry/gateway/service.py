"""``Gateway(settings)``: one instance of ``kretry gateway``, the threads that make it and their start and stop.

Threads: the configurations view, the replies reader, the owner of request partitions, the wheel, the due stage
(with its event loop for deliveries), the producer's acknowledgements; uvicorn serves the API beside them
(kretry.web.server). Any number of instances share the work through the consumer groups.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import structlog
from confluent_kafka.admin import AdminClient

from kretry.admin import TopicNeed, create_topics
from kretry.config import admin_conf
from kretry.errors import BrokerUnavailable
from kretry.gateway import secrets
from kretry.gateway.api import Api
from kretry.gateway.context import Context
from kretry.gateway.direct import Direct
from kretry.gateway.due import DueStage
from kretry.gateway.ledger import Ledger
from kretry.gateway.metrics import GatewayMetrics
from kretry.gateway.outbox import Outbox
from kretry.gateway.owner import Owner
from kretry.gateway.replies import Replies
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.store import ConfigView
from kretry.gateway.topics import Names
from kretry.gateway.wheel import Wheel

log = structlog.get_logger("kretry.gateway")

WEEK_MS = 7 * 86400 * 1000
DAY_MS = 86400 * 1000
# Compaction cleans closed segments only, and by default a segment closes after 7 days or 1 GB: a new owner reads
# its partition of the counts topic whole, a count per post since the last cleaning. A 10-minute roll keeps that to
# the live counts and about ten minutes of posts.
COMPACTED_SEGMENT_MS = 600_000


def needs(settings: GatewaySettings, names: Names) -> list[TopicNeed]:
    """The gateway's topics: what each keeps and for how long."""
    width = settings.gateway_partitions

    def need(name: str, cleanup: str, retention_ms: int | None, partitions: int = width) -> TopicNeed:
        segment_ms = COMPACTED_SEGMENT_MS if cleanup == "compact" else None
        return TopicNeed(name, "gateway", partitions, "", retention_ms, retention_ms, cleanup, segment_ms=segment_ms)

    out = [
        need(names.configs, "compact", None),
        need(names.requests, "delete", DAY_MS),
        need(names.counts, "compact", None),
        need(names.replies, "delete", 3_600_000),
        # An event waits at most 2**17 s (36 h) in a bucket: a week keeps it well past that.
        *(need(name, "delete", WEEK_MS) for name in [*names.buckets, names.due]),
    ]
    if settings.dlq_topic is not None:
        out.append(need(settings.dlq_topic, "delete", 2 * WEEK_MS))
    return out


class Gateway:
    def __init__(self, settings: GatewaySettings, stopping: threading.Event | None = None) -> None:
        self.settings = settings
        self.names = Names(settings.gateway_prefix)
        self.stopping = stopping if stopping is not None else threading.Event()
        self.instance = uuid.uuid4().hex
        self.metrics = GatewayMetrics()
        self._sealer = secrets.Sealer(settings.gateway_secret_key)
        self._threads: list[threading.Thread] = []
        self._failure: str | None = None
        # Clients only: nothing here talks to the cluster before start().
        width = settings.gateway_partitions
        self.outbox = Outbox(settings)
        self.view = ConfigView(settings, self.names.configs, width, self._sealer.unseal)
        self.replies = Replies(settings, self.names.replies, width, self.instance)
        self.ledger = Ledger(self.view)
        direct = Direct(settings, self.names, self.outbox, self.ledger)
        self.api = Api(
            settings, self.names, self.outbox, self.replies, direct, self.view, self.metrics, self._sealer.seal
        )
        self.owner: Owner | None = None
        self._assigned: dict[str, threading.Event] = {}

    def start(self, timeout: float = 15.0) -> None:
        """Create the topics, read the configurations, start every loop; raises BrokerUnavailable when the cluster
        does not answer within ``timeout``."""
        admin = AdminClient(admin_conf(self.settings))
        try:
            admin.list_topics(timeout=timeout)
        except Exception as exc:
            raise BrokerUnavailable(
                f"no answer from {self.settings.bootstrap_servers} in {timeout:.0f}s: {exc}"
            ) from None
        create_topics(admin, needs(self.settings, self.names))
        self.view.start(timeout)
        self.replies.start(timeout)
        ctx = Context(self.settings, self.names, self.outbox, self.view, self.stopping)
        self.owner = Owner(ctx, self.ledger)
        wheel = Wheel(ctx)
        due = DueStage(ctx, self.metrics.delivered, self.metrics.late)
        self._assigned = {"requests": self.owner.assigned, "the wheel": wheel.assigned, "due": due.assigned}
        for name, target in (("owner", self.owner.run), ("wheel", wheel.run), ("due", due.run)):
            thread = threading.Thread(target=self._guarded(name, target), name=f"kretry-gateway-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("gateway started", instance=self.instance, prefix=self.settings.gateway_prefix)

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:
                self._failure = f"{name}: {type(exc).__name__}: {exc}"
                log.exception("gateway loop failed", loop=name)
                self.stopping.set()

        return run

    def problem(self) -> str | None:
        if self._failure is not None:
            return self._failure
        dead = [t.name for t in self._threads if not t.is_alive()]
        return f"stopped: {', '.join(dead)}" if dead and not self.stopping.is_set() else None

    def not_ready(self) -> str | None:
        """Why the instance is not ready yet: every loop has its partitions only once its group is formed (a new
        group waits out the broker's initial rebalance delay, 3 s by default)."""
        if not self._assigned:
            return "starting"
        waiting = [name for name, event in self._assigned.items() if not event.is_set()]
        return f"waiting for partitions of {', '.join(waiting)}" if waiting else None

    @property
    def failure(self) -> str | None:
        return self._failure

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        self.replies.stop()
        self.view.stop()
        left = self.outbox.close(max(1.0, deadline - time.monotonic()))
        if left:
            log.error("records unacknowledged at stop", count=left)
        log.info("gateway stopped", instance=self.instance)
