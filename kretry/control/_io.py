"""The control topic's I/O: ``send`` a command (acknowledged before it returns), and the ``Reader`` thread through
which a worker's stages learn the commands."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kretry import config
from kretry.config import Settings
from kretry.control._commands import Command, Orders, decode
from kretry.errors import BrokerUnavailable, ConfigError, TopologyError

log = structlog.get_logger("kretry")

SEND_TIMEOUT = 15.0
POLL = 0.2  # seconds: bounds how late a running worker learns a command


def send(settings: Settings, topic: str, command: Command) -> None:
    """Produce ``command`` to ``topic`` (the retrier's control topic) and wait for the broker's acknowledgement."""
    try:
        admin = AdminClient(config.admin_conf(settings))
        producer = Producer({**config.producer_conf(settings), "enable.idempotence": True})
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(f"kafka settings: {exc}") from None
    try:
        # All topics, not this one: asking for it by name may have a broker create it, one partition wide.
        topics = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        raise BrokerUnavailable(f"no answer from {settings.bootstrap_servers}: {exc}") from None
    if topic not in topics:
        raise TopologyError(f"control topic {topic!r} does not exist: start the worker or `kretry topics create`")
    failed: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    producer.produce(topic, command.encode(), key=command.topic.encode("utf-8"), on_delivery=on_delivery)
    if producer.flush(SEND_TIMEOUT):
        raise BrokerUnavailable(f"the command to {topic} was not acknowledged within {SEND_TIMEOUT:.0f}s")
    if failed:
        raise BrokerUnavailable(f"the command to {topic} was refused: {failed[0].str()}")


class Reader:
    """Reads a control topic from ``horizon_ms`` ago on, into ``orders``, until ``stopping`` is set. Commits
    nothing and has no group membership: every worker reads every command."""

    def __init__(self, settings: Settings, topic: str, horizon_ms: int, orders: Orders, stopping: threading.Event):
        conf = config.consumer_conf(settings, f"{topic}.reader", main=False)
        self._conf = {**conf, "enable.auto.commit": False}
        self.topic, self.horizon_ms, self.orders, self._stopping = topic, horizon_ms, orders, stopping
        self._log = log.bind(topic=topic)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._read()
            except KafkaException as exc:  # the broker away, the topic gone: read again from the horizon
                self._log.warning("control topic unreadable; reading it again", error=str(exc))
                self._stopping.wait(1.0)

    def _read(self) -> None:
        consumer = Consumer(self._conf)
        try:
            meta = consumer.list_topics(self.topic, timeout=10)
            partitions = sorted(meta.topics[self.topic].partitions) if self.topic in meta.topics else []
            since = int(time.time() * 1000) - self.horizon_ms
            starts = consumer.offsets_for_times([TopicPartition(self.topic, p, since) for p in partitions], 10)
            consumer.assign(starts)
            while not self._stopping.is_set():
                for msg in consumer.consume(100, POLL):
                    err = msg.error()
                    if err is None:
                        self._learn(msg)
                    elif err.fatal():
                        raise KafkaException(err)
        finally:
            consumer.close()

    def _learn(self, msg: Any) -> None:
        try:
            command = decode(msg.value())
        except ValueError as exc:
            self._log.warning("control record ignored", partition=msg.partition(), offset=msg.offset(), error=str(exc))
            return
        if self.orders.add(command):
            self._log.info(
                "tier command", id=command.id, action=command.action, tier=command.topic, issued_at=command.issued_at
            )
