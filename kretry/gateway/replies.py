"""The answers owners send back: each instance reads one partition of ``<prefix>.replies`` (chosen by its
instance id) from where it stood at start-up, and hands each answer to the request that waits for it."""

from __future__ import annotations

import asyncio
import threading
import zlib

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition

from kretry.config import consumer_conf
from kretry.gateway.consume import take, watermarks
from kretry.gateway.events import Reply
from kretry.gateway.settings import GatewaySettings

log = structlog.get_logger("kretry.gateway")


def reply_partition(instance: str, partitions: int) -> int:
    return zlib.crc32(instance.encode()) % partitions


class Replies:
    def __init__(self, settings: GatewaySettings, topic: str, partitions: int, instance: str) -> None:
        conf = consumer_conf(settings, "kretry-gateway-unused", main=True)
        conf.update({"enable.auto.commit": False, "fetch.wait.max.ms": 100})
        self._consumer = Consumer(conf)
        self._topic = topic
        self.instance = instance
        self.partition = reply_partition(instance, partitions)
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="kretry-gateway-replies", daemon=True)

    def start(self, timeout: float) -> None:
        # From the end as it is now, an explicit offset: a reply sent once start() returned is never missed.
        end = watermarks(self._consumer, self._topic, self.partition, timeout)[1]
        self._consumer.assign([TopicPartition(self._topic, self.partition, end)])
        self._thread.start()

    def expect(self, request_id: str) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def _follow(self) -> None:
        mine = self.instance.encode()
        while not self.stopping.is_set():
            for msg in take(self._consumer, 500, 0.1):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("replies topic", error=err.str())
                    continue
                if msg.key() != mine:
                    continue
                try:
                    reply = Reply.decode(msg.value() or b"")
                except (ValueError, KeyError):
                    continue
                with self._lock:
                    future = self._waiting.pop(reply.id, None)
                if future is not None:
                    future.get_loop().call_soon_threadsafe(_resolve, future, reply)
        self._consumer.close()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)


def _resolve(future: asyncio.Future[Reply], reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)
