"""The yardsticks: plain confluent-kafka loops doing the same work as kretry, with the same client settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bench.common import BOOTSTRAP, Clock
from kretry import config

BATCH = 500  # kretry's own batch size


def _settings() -> config.Settings:
    return config.load({"bootstrap_servers": BOOTSTRAP}, environ={})


def consumer_conf(group: str, *, main: bool = True) -> dict[str, Any]:
    return config.consumer_conf(_settings(), group, main=main)


def producer_conf() -> dict[str, Any]:
    return config.producer_conf(_settings())


def _store(consumer: Consumer, topic: str, last: dict[int, int]) -> None:
    if last:
        consumer.store_offsets(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()])
        last.clear()


def consume_loop(
    topic: str, group: str, count: int, process: Callable[[Any], None], timeout: float = 120.0
) -> tuple[float, float]:
    """Consume in batches, call `process` per record, store offsets per batch, auto-commit: (first, last) time."""
    consumer = Consumer(consumer_conf(group))
    consumer.subscribe([topic])
    handled, first, last = 0, 0.0, 0.0
    offsets: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while handled < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare loop: {handled} of {count} records")
            batch = consumer.consume(BATCH, 0.1)
            if not batch:
                continue
            if not first:
                first = time.time()
            for msg in batch:
                if msg.error() is not None:
                    continue
                process(msg)
                offsets[msg.partition()] = msg.offset()
                handled += 1
            _store(consumer, topic, offsets)
        last = time.time()
    finally:
        consumer.close()
    return first, last


def blocking_retry_loop(
    topic: str, group: str, count: int, process: Callable[[Any], None], pause: float
) -> tuple[float, float]:
    """The head-of-line blocking way: a failing record is retried in place after `pause` seconds."""

    def patient(msg: Any) -> None:
        while True:
            try:
                process(msg)
                return
            except Exception:
                time.sleep(pause)

    return consume_loop(topic, group, count, patient, timeout=600.0)


class Hop(threading.Thread):
    """consume `src` -> call `process` -> on failure produce to `dst` -> store the offset once acknowledged."""

    def __init__(self, src: str, dst: str, group: str, process: Callable[[Any], None], clock: Clock | None) -> None:
        super().__init__(name=f"hop-{src}", daemon=True)
        self.src, self.dst, self.group, self.process, self.clock = src, dst, group, process, clock
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.error = exc

    def _loop(self) -> None:
        consumer = Consumer(consumer_conf(self.group, main=self.clock is not None))
        producer = Producer(producer_conf())
        acked: dict[int, int] = {}
        consumer.subscribe([self.src])

        def acknowledge(partition: int, offset: int) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, _msg: Any) -> None:
                if err is not None:
                    raise KafkaException(err)
                if offset > acked.get(partition, -1):
                    acked[partition] = offset

            return on_delivery

        try:
            while not self.stopping.is_set():
                batch = consumer.consume(BATCH, 0.1)
                if batch and self.clock is not None and self.clock.first is None:
                    self.clock.tick()
                for msg in batch:
                    if msg.error() is None:
                        self._forward(producer, msg, acknowledge(msg.partition(), msg.offset()))
                producer.poll(0)
                _store(consumer, self.src, acked)
        finally:
            producer.flush(10)
            consumer.close()

    def _forward(self, producer: Producer, msg: Any, on_delivery: Callable[[Any, Any], None]) -> None:
        try:
            self.process(msg)
        except Exception:
            self._produce(producer, msg, on_delivery)

    def _produce(self, producer: Producer, msg: Any, on_delivery: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                producer.produce(
                    self.dst,
                    msg.value(),
                    key=msg.key(),
                    headers=msg.headers(),
                    partition=msg.partition(),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                producer.poll(0.05)
