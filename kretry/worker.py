"""Runs every stage of a Retrier, each in a thread of its own, and stops them all together.

Start-up checks the cluster before anything is consumed: the broker answers, the main topics exist, the retry
topics and the DLQ exist or are created, the librdkafka settings are valid.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata  # type: ignore[attr-defined]

from kretry import config
from kretry.admin import LEDGER_ROLE, create_topics, needs
from kretry.errors import BrokerUnavailable, ConfigError, KafkaFatalError, TopologyError
from kretry.metrics import Metrics
from kretry.retrier import Retrier
from kretry.stage import Stage

log = structlog.get_logger("kretry")

STOP_TIMEOUT = 10.0
STALL_LIMIT = 60.0  # seconds without a loop turn before /readyz calls a stage stalled


class Worker:
    def __init__(
        self,
        retrier: Retrier,
        *,
        create_topics: bool = True,
        metrics: Metrics | None = None,
        startup_timeout: float = 15.0,
        stopping: threading.Event | None = None,
    ) -> None:
        if not retrier.handlers:
            raise ConfigError(f"{retrier!r} has no handlers; register one with @retrier.handler(topic)")
        self.retrier = retrier
        self.metrics = metrics or Metrics()
        self.create_topics = create_topics
        self.startup_timeout = startup_timeout
        self.stopping = stopping or threading.Event()
        self.stages: list[Stage] = []
        self._threads: list[threading.Thread] = []
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    # -- start-up -------------------------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.retrier.settings
        admin = self._client(AdminClient, config.admin_conf(settings))
        meta = self._metadata(admin)
        widths = self._ensure_topics(admin, meta)
        producer_conf = config.producer_conf(settings)
        self._client(Producer, producer_conf)
        for spec in self.retrier.stages():
            consumer_conf = config.consumer_conf(settings, spec.group, main=spec.attempt == 0)
            self._client(Consumer, consumer_conf).close()
            self.stages.append(
                Stage(
                    spec,
                    consumer_conf=consumer_conf,
                    producer_conf=producer_conf,
                    dlq_topic=self.retrier.dlq_topic,
                    group_id=self.retrier.group_id,
                    partitions=widths,
                    metrics=self.metrics,
                    stopping=self.stopping,
                )
            )
        for stage in self.stages:
            thread = threading.Thread(target=self._run_stage, args=(stage,), name=f"kretry-{stage.spec.topic}")
            self._threads.append(thread)
            thread.start()
        log.info(
            "worker started",
            stages=len(self.stages),
            bootstrap=settings.bootstrap_servers,
            kafka=config.redact(settings.kafka),
        )

    @staticmethod
    def _client(kind: Any, conf: dict[str, Any]) -> Any:
        try:
            return kind(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"kafka settings: {exc}") from None

    def _metadata(self, admin: AdminClient) -> ClusterMetadata:
        bootstrap = self.retrier.settings.bootstrap_servers
        try:
            return admin.list_topics(timeout=self.startup_timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"no answer from the Kafka cluster at {bootstrap} within {self.startup_timeout:.0f}s: {exc}"
            ) from None

    def _ensure_topics(self, admin: AdminClient, meta: ClusterMetadata) -> dict[str, int]:
        """Create the missing retry topics and DLQ; return how wide every topic of the retrier is."""
        handlers = self.retrier.handlers
        absent = [t for t in handlers if t not in meta.topics or meta.topics[t].error is not None]
        if absent:
            raise TopologyError(
                f"main topic {', '.join(repr(t) for t in absent)} does not exist on "
                f"{self.retrier.settings.bootstrap_servers}; kretry creates retry topics and the DLQ, "
                "never the topics it reads from"
            )
        wanted = [
            n
            for n in needs(self.retrier, {t: len(meta.topics[t].partitions) for t in handlers})
            if n.role != LEDGER_ROLE  # the replay ledger is made by the first replay, not by the worker
        ]
        todo = [n for n in wanted if n.name not in meta.topics]
        if todo and not self.create_topics:
            raise TopologyError(
                "missing topics (run without --no-create-topics, or `kretry topics create`): "
                + ", ".join(n.name for n in todo)
            )
        create_topics(admin, todo)
        return {n.name: len(meta.topics[n.name].partitions) if n.name in meta.topics else n.partitions for n in wanted}

    # -- running --------------------------------------------------------------------------------------------

    def _run_stage(self, stage: Stage) -> None:
        try:
            stage.run()
        except BaseException as exc:
            with self._lock:
                if self.failure is None:
                    self.failure = exc
            log.error("stage failed", topic=stage.spec.topic, error=f"{type(exc).__name__}: {exc}")
            self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every stage to finish; True when all did within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def wait(self, poll: float = 0.2) -> None:
        """Block until a stop is requested or a stage fails, refreshing the lag gauges as it goes."""
        while not self.stopping.wait(poll):
            for stage in self.stages:
                # Lag is a gauge: one missed refresh is harmless.
                with contextlib.suppress(KafkaException, RuntimeError):
                    stage.update_lag()

    def run(self) -> None:
        """Start, run until ``stop()`` or a failure, stop every stage; raise the failure, if any."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop()
            self.join(STOP_TIMEOUT)
        self.raise_failure()

    def raise_failure(self) -> None:
        failure = self.failure
        if failure is None:
            return
        if isinstance(failure, KafkaException):
            raise KafkaFatalError(str(failure)) from failure
        raise failure

    def stalled(self, limit: float = STALL_LIMIT) -> list[str]:
        """The topics of stages whose loop has not come round for ``limit`` seconds (a handler stuck, say)."""
        now = time.monotonic()
        return [s.spec.topic for s in self.stages if now - s.last_step > limit]

    def problems(self) -> list[str]:
        """Why the worker is not serving as it should right now (a stalled stage, say); empty when it is.

        ``/readyz`` answers 503 with these reasons; each stage may add its own (``Stage.problems``).
        """
        found = []
        stalled = self.stalled()
        if stalled:
            found.append(f"no poll for {STALL_LIMIT:.0f}s on {', '.join(stalled)}: a handler may be stuck")
        for stage in self.stages:
            found.extend(stage.problems())
        return found

    @property
    def ready(self) -> bool:
        """Every stage has had its assignment."""
        return bool(self.stages) and all(s.assigned is not None for s in self.stages)
