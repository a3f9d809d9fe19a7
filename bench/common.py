"""Shared bench plumbing: the broker, fresh topics, fast producing, waiting, quiet kretry logs."""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kretry import Retrier, Worker, logs
from tests.integration.kit import wait_until

BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 6
VALUE = b"x" * 100
Headers = list[tuple[str, bytes]]


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def quiet_kretry_logs() -> None:
    """kretry's logs as `kretry run` renders them (JSON, INFO), into /dev/null: the cost stays, the noise goes."""
    logs.configure("INFO", "json")
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sink))


def create_topics(names: Iterable[str], partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    names = list(names)
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        if all(
            n in meta.topics
            and len(meta.topics[n].partitions) == partitions
            and all(p.leader >= 0 for p in meta.topics[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"no leaders for {names}")


def delete_topics(names: Iterable[str]) -> None:
    """Free the broker's disk after a run; failures do not matter to the figures."""
    names = list(names)
    if names:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_topics(names, operation_timeout=30)


def produce(
    topic: str,
    count: int,
    *,
    value: Callable[[int], bytes] | None = None,
    headers: Callable[[int], Headers] | None = None,
    key: Callable[[int], bytes] | None = None,
    partitions: int = PARTITIONS,
) -> None:
    """`count` records spread round-robin over the partitions, every one acknowledged."""
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "compression.type": "none",
        }
    )
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    for i in range(count):
        kwargs: dict[str, Any] = {"partition": i % partitions, "on_delivery": on_delivery}
        if headers is not None:
            kwargs["headers"] = headers(i)
        if key is not None:
            kwargs["key"] = key(i)
        while True:
            try:
                producer.produce(topic, value(i) if value else VALUE, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    if producer.flush(120) or failed:
        raise KafkaException(f"producing to {topic} failed: {failed[:3]}")


def end_total(topic: str, partitions: int = PARTITIONS) -> int:
    """Records a topic holds: the sum of its high watermarks."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("probe")})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    finally:
        consumer.close()


class WatermarkWatch:
    """Polls a topic's high watermarks until they sum to `target`; `done_at` is when (time.time())."""

    def __init__(self, topic: str, target: int, partitions: int = PARTITIONS) -> None:
        self.topic, self.target, self.partitions = topic, target, partitions
        self.done_at: float | None = None
        self._consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("watch")})

    def wait(self, timeout: float, interval: float = 0.02) -> float:
        deadline = time.monotonic() + timeout
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        try:
            while time.monotonic() < deadline:
                total = sum(self._consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in tps)
                if total >= self.target:
                    self.done_at = time.time()
                    return self.done_at
                time.sleep(interval)
        finally:
            self._consumer.close()
        raise TimeoutError(f"{self.topic}: fewer than {self.target} records after {timeout}s")


class CommittedWatch:
    """Reads a topic read_committed until `target` records came: what a downstream reader sees, transactions or not
    (a transaction's commit marker takes an offset, so the high watermarks overcount); `done_at` is when."""

    def __init__(self, topic: str, target: int, partitions: int = PARTITIONS) -> None:
        self.topic, self.target = topic, target
        self.done_at: float | None = None
        self._consumer = Consumer(
            {"bootstrap.servers": BOOTSTRAP, "group.id": unique("watch"), "isolation.level": "read_committed"}
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def wait(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        seen = 0
        try:
            while time.monotonic() < deadline:
                seen += sum(1 for m in self._consumer.consume(10_000, 0.05) if m.error() is None)
                if seen >= self.target:
                    self.done_at = time.time()
                    return self.done_at
        finally:
            self._consumer.close()
        raise TimeoutError(f"{self.topic}: {seen} of {self.target} records read_committed after {timeout}s")


class Running:
    """A Worker running in threads of this process."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="bench-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.errors.append(exc)

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for `predicate`, failing at once when the worker died."""

        def done() -> bool:
            if self.errors or not self.thread.is_alive():
                raise RuntimeError(f"worker stopped while waiting for {what}: {self.errors}")
            return predicate()

        wait_until(done, timeout, interval=0.01, what=what)


@contextmanager
def running(retrier: Retrier) -> Iterator[Running]:
    """A started Worker, stopped (and its failure raised) at the end."""
    handle = Running(Worker(retrier))
    handle.thread.start()
    try:
        yield handle
    finally:
        handle.worker.stop()
        handle.thread.join(30)
    if handle.errors:
        raise handle.errors[0]


def handled_rate(retrier: Retrier, clock: Clock, count: int) -> float:
    """Run the retrier until its handlers ticked ``clock`` ``count`` times: records / (first tick -> last)."""
    with running(retrier) as worker:
        worker.wait(lambda: clock.count >= count, timeout=120, what="every record handled")
    assert clock.first is not None
    return count / (clock.last - clock.first)


class Clock:
    """First and last time (time.time()) something happened, and how many times; safe across threads."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.count = 0

    def tick(self, n: int = 1) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += n


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
