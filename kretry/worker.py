"""Runs every stage of a Retrier, each in a thread of its own, and stops them all together.

Start-up checks the cluster before anything is consumed: the broker answers, the main topics exist, the retry
topics and the DLQ exist or are created, the librdkafka settings are valid.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata  # type: ignore[attr-defined]

from kretry import config, control, dlq
from kretry.admin import LEDGER_ROLE, TopicNeed, create_topics, max_message_bytes, needs, stranded_names
from kretry.errors import (
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    KretryError,
    StopTimeout,
    TopologyError,
)
from kretry.guard import Flood
from kretry.instance import Instance, claim, transactional_id
from kretry.lag import group_lag
from kretry.metrics import Metrics
from kretry.retrier import Retrier
from kretry.stage import Stage
from kretry.stranded import waiting_of_ours
from kretry.topology import control_horizon_ms, control_topic

log = structlog.get_logger("kretry")

STOP_TIMEOUT = 10.0
STALL_LIMIT = 60.0  # seconds without a loop turn before /readyz calls a stage stalled
LAG_EVERY = 5.0  # seconds between refreshes of the lag gauges
DLQ_DEPTH_EVERY = 60.0  # seconds between counts of the DLQ's pending records (a read of its ledger)
RECREATE_EVERY = 5.0  # seconds between looks for retry topics or a DLQ deleted while running


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
        self._admin: AdminClient | None = None
        self._wanted: dict[str, TopicNeed] = {}
        self._recreated_at = float("-inf")
        self.instance: Instance | None = None  # exactly_once: this worker's part of its transactional ids
        self.absent: list[str] = []  # topics of ours found deleted at the last look
        self.flood = None if retrier.dlq_guard is None else Flood(retrier.dlq_guard)
        self.orders = control.Orders()  # operators' tier commands, read by one thread for every stage
        flood = self.flood
        self.metrics.guard_tripped.set_function(lambda: float(flood is not None and flood.tripped is not None))

    # -- start-up -------------------------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.retrier.settings
        # Every client's settings are checked before anything is created on the cluster: a typo must not leave
        # topics behind.
        producer_conf = config.producer_conf(settings)
        self._client(Producer, producer_conf)
        consumer_confs = {}
        for spec in self.retrier.stages():
            consumer_confs[spec.topic] = config.consumer_conf(settings, spec.group, main=spec.attempt == 0)
            self._client(Consumer, consumer_confs[spec.topic]).close()
        admin = self._client(AdminClient, config.admin_conf(settings))
        meta = self._metadata(admin)
        wanted = self._ensure_topics(admin, meta)
        self._admin, self._wanted = admin, {n.name: n for n in wanted if n.role != "main"}
        widths = {
            n.name: len(meta.topics[n.name].partitions) if n.name in meta.topics else n.partitions for n in wanted
        }
        # A record that just fits its main topic, plus kretry's headers, must not be refused by our own producer.
        largest = max((n.max_message_bytes or 0 for n in wanted), default=0)
        if largest and "message.max.bytes" not in settings.kafka:
            producer_conf["message.max.bytes"] = largest
        if settings.exactly_once:
            self.instance = claim(self.retrier.group_id, settings.instance_id)
        for spec in self.retrier.stages():
            self.stages.append(
                Stage(
                    spec,
                    consumer_conf=consumer_confs[spec.topic],
                    producer_conf=producer_conf,
                    dlq_topic=self.retrier.dlq_topic,
                    group_id=self.retrier.group_id,
                    partitions=widths,
                    metrics=self.metrics,
                    stopping=self.stopping,
                    flood=self.flood,
                    control=self.orders,
                    transactional_id=None
                    if self.instance is None
                    else transactional_id(self.retrier.group_id, spec.topic, self.instance.name),
                )
            )
            self.stages[-1].bound_window(settings.retry_window_records, settings.retry_window_mb)
        try:
            for stage in self.stages:
                # Before anything is consumed: a predecessor with the same ids is fenced and its open transactions
                # aborted, and a cluster without usable transactions stops the start-up here.
                stage.prepare(self.startup_timeout)
        except BaseException:
            self._release()
            raise
        reader = control.Reader(
            settings,
            control_topic(self.retrier.group_id),
            control_horizon_ms([s.delay for s in self.retrier.stages()]),
            self.orders,
            self.stopping,
        )
        # Not one of the stages' threads: it holds no record, and stops within a poll of the stop.
        threading.Thread(target=reader.run, name="kretry-control", daemon=True).start()
        for stage in self.stages:
            # Daemon threads: a handler that never returns must not keep the process alive past the stop timeout.
            thread = threading.Thread(
                target=self._run_stage, args=(stage,), name=f"kretry-{stage.spec.topic}", daemon=True
            )
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

    def _ensure_topics(self, admin: AdminClient, meta: ClusterMetadata) -> list[TopicNeed]:
        """Create the missing retry topics and DLQ; return every topic the stages read or write."""
        handlers = list(self.retrier.handlers)
        absent = [t for t in handlers if t not in meta.topics or meta.topics[t].error is not None]
        if absent:
            raise TopologyError(
                f"main topic {', '.join(repr(t) for t in absent)} does not exist on "
                f"{self.retrier.settings.bootstrap_servers}; kretry creates retry topics and the DLQ, "
                "never the topics it reads from"
            )
        self._refuse_stranded(admin, meta)
        widths = {t: len(meta.topics[t].partitions) for t in handlers}
        wanted = [
            n
            for n in needs(self.retrier, widths, max_message_bytes(admin, handlers))
            if n.role != LEDGER_ROLE  # the replay ledger is made by the first replay, not by the worker
        ]
        todo = [n for n in wanted if n.name not in meta.topics]
        if todo and not self.create_topics:
            raise TopologyError(
                "missing topics (run without --no-create-topics, or `kretry topics create`): "
                + ", ".join(n.name for n in todo)
            )
        create_topics(admin, todo)
        return wanted

    def _refuse_stranded(self, admin: AdminClient, meta: ClusterMetadata) -> None:
        """A retry topic of an earlier schedule that no stage of this one reads must hold no record of ours that
        its old stage left: it would never be retried, a loss. One that was drained is only worth a warning."""
        conf = config.consumer_conf(self.retrier.settings, "kretry-stranded", main=False)
        for name in stranded_names(self.retrier.handlers, meta.topics):
            group = f"{self.retrier.group_id}.{name}"  # the group its stage had (topology.stage_group)
            try:
                waiting = waiting_of_ours(conf, group, self.retrier.group_id, name, len(meta.topics[name].partitions))
            except (KafkaException, TimeoutError) as exc:
                raise BrokerUnavailable(f"could not tell whether {name} is drained: {exc}") from None
            if waiting:
                raise TopologyError(
                    f"{name} holds {waiting} records of {self.retrier.group_id} that its stage (group {group}) has "
                    "not handled, and no stage of this schedule reads it (equal delays in a row now share one retry "
                    "topic, or tiers were dropped): run the previous schedule until it is drained, then delete it"
                )
            log.warning("a retry topic no stage reads any more holds nothing of ours", topic=name)

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
        lag_at = depth_at = float("-inf")
        while not self.stopping.wait(poll):
            self._recreate_missing()
            if time.monotonic() - lag_at >= LAG_EVERY:
                lag_at = time.monotonic()
                self._refresh_lag()
            if time.monotonic() - depth_at >= DLQ_DEPTH_EVERY:
                depth_at = time.monotonic()
                self._refresh_dlq_depth()

    def _refresh_dlq_depth(self) -> None:
        if self.retrier.dlq_topic is None:
            return
        try:
            found = dlq.depth(self.retrier.settings)
        except (KretryError, KafkaException) as exc:
            log.debug("DLQ depth not refreshed", error=str(exc))  # a gauge: the next count will do
            return
        self.metrics.dlq_records.labels("total").set(found.total)
        self.metrics.dlq_records.labels("pending").set(found.pending)

    def _refresh_lag(self) -> None:
        if self._admin is None:
            return
        for stage in self.stages:
            assigned = set(stage.assigned or ())
            try:
                stage.set_lag(group_lag(self._admin, stage.spec.group, stage.spec.topic, assigned))
            except (KafkaException, TimeoutError, RuntimeError) as exc:
                log.debug("lag not refreshed", topic=stage.spec.topic, error=str(exc))  # a gauge: the next one will

    def _recreate_missing(self) -> None:
        """Create again, as planned, a retry topic or DLQ deleted while we run; forwards to it wait meanwhile.

        Left to the producer, a forward would wait for the topic's metadata for a while and then be refused over
        and over; a producer allowed to create it would make it one partition wide, and refuse the others.
        """
        now = time.monotonic()
        if self._admin is None or now - self._recreated_at < RECREATE_EVERY:
            return
        self._recreated_at = now
        try:
            topics = self._admin.list_topics(timeout=5).topics
        except KafkaException:
            return  # the broker is away; the stages say so themselves
        self.absent = sorted(t for t in self._wanted if t not in topics)
        if not self.absent:
            return
        if not self.create_topics:
            log.error("topics deleted while running; forwards to them wait", topics=self.absent)
            return
        log.warning("creating topics again that were deleted while running", topics=self.absent)
        try:
            create_topics(self._admin, [self._wanted[t] for t in self.absent])
        except TopologyError as exc:
            log.error("creating deleted topics again failed; forwards to them wait", error=str(exc))
            return
        for stage in self.stages:
            if stage.spec.topic in self.absent:
                stage.recreated.set()

    def run(self) -> None:
        """Start, run until ``stop()`` or a failure, stop every stage; raise the failure, if any."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop()
            stopped = self.join(STOP_TIMEOUT)
            if stopped:
                self._release()
        self.raise_failure()
        if not stopped:
            busy = sorted(s.spec.topic for s, t in zip(self.stages, self._threads, strict=True) if t.is_alive())
            raise StopTimeout(
                f"still in a handler {STOP_TIMEOUT:.0f}s after the stop: {', '.join(busy)}; "
                "their records are not committed and will be handled again"
            )

    def _release(self) -> None:
        if self.instance is not None:
            self.instance.release()
            self.instance = None

    def raise_failure(self) -> None:
        failure = self.failure
        if failure is None:
            return
        if isinstance(failure, KafkaException):
            raise KafkaFatalError(str(failure)) from failure
        raise failure

    def reset_dlq_guard(self) -> bool:
        """Let records flow to the DLQ again after the guard tripped; False when there is no guard."""
        if self.flood is None:
            return False
        if self.flood.tripped is not None:
            log.warning("DLQ flood guard reset", was=self.flood.tripped)
        self.flood.reset()
        return True

    def stalled(self, limit: float = STALL_LIMIT) -> list[str]:
        """The topics of stages whose loop has not come round for ``limit`` seconds (a handler stuck, say)."""
        now = time.monotonic()
        return [s.spec.topic for s in self.stages if now - s.last_step > limit]

    def problems(self) -> list[str]:
        """Why the worker is not serving as it should right now (a stalled stage, say); empty when it is.

        ``/readyz`` answers 503 with these reasons; each stage may add its own (``Stage.problems``).
        """
        found = [f"{t} does not exist (deleted while running?); forwards to it wait" for t in self.absent]
        if self.flood is not None and self.flood.tripped is not None:
            found.append(
                f"DLQ flood guard tripped: {self.flood.tripped}; records bound for the DLQ are held and the main "
                "topics paused until POST /v1/dlq_guard/reset or a restart"
            )
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
