"""Every instance's view of the configurations: the compacted ``<prefix>.configs`` topic, read from its start and
then followed, so that a configuration posted to one instance is used by all within a poll, and survives restarts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from kretry.config import consumer_conf
from kretry.gateway import configs
from kretry.gateway.configs import Config
from kretry.gateway.consume import take, watermarks
from kretry.gateway.settings import GatewaySettings

log = structlog.get_logger("kretry.gateway")

Unseal = Callable[[dict[str, object]], dict[str, object]]


class ConfigView:
    def __init__(self, settings: GatewaySettings, topic: str, partitions: int, unseal: Unseal) -> None:
        conf = consumer_conf(settings, "kretry-gateway-unused", main=True)
        # Read by assignment, never as a group: every instance reads every configuration.
        conf.update({"enable.auto.commit": False, "fetch.wait.max.ms": 50})
        self._consumer = Consumer(conf)
        # The end offsets are asked with a client of their own: one in consume() in another thread does not answer.
        self._marks = Consumer(conf)
        self._marks_lock = threading.Lock()
        self._topic = topic
        self._partitions = partitions
        self._unseal = unseal
        self._configs: dict[str, Config] = {}
        self._positions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="kretry-gateway-configs", daemon=True)

    def start(self, timeout: float) -> None:
        """Read every configuration there is, then follow the topic."""
        self._consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in range(self._partitions)])
        ends = self.ends(timeout)
        self._thread.start()
        self.wait_for(ends, timeout)

    def ends(self, timeout: float) -> dict[int, int]:
        with self._marks_lock:
            return {p: watermarks(self._marks, self._topic, p, timeout)[1] for p in range(self._partitions)}

    def wait_for(self, ends: dict[int, int], timeout: float) -> bool:
        """Wait until everything before ``ends`` was read: a write acknowledged before them is seen."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(self._positions.get(p, 0) >= end for p, end in ends.items() if end > 0):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def catch_up(self, timeout: float) -> bool:
        """Wait until this view has every configuration written so far: a client that was told its configuration
        is created may post an event for it to this very instance at once."""
        return self.wait_for(self.ends(timeout), timeout)

    def parse(self, stored: dict[str, object]) -> Config:
        """A configuration in its stored form (secrets sealed or not)."""
        return configs.parse(self._unseal(stored))

    def get(self, identifier: str) -> Config | None:
        return self._configs.get(identifier)

    def all(self) -> list[Config]:
        return sorted(self._configs.values(), key=lambda c: c.identifier)

    def _follow(self) -> None:
        while not self.stopping.is_set():
            msgs = take(self._consumer, 500, 0.1)
            if not msgs:
                continue
            with self._changed:
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("configurations topic", error=err.str())
                        continue
                    self._read(msg.key(), msg.value())
                    self._positions[msg.partition() or 0] = (msg.offset() or 0) + 1
                self._changed.notify_all()
        self._consumer.close()

    def _read(self, key: bytes | None, value: bytes | None) -> None:
        identifier = (key or b"").decode("utf-8", "replace")
        if value is None:
            self._configs.pop(identifier, None)
            return
        try:
            self._configs[identifier] = self.parse(json.loads(value))
        except (ValueError, configs.Invalid) as exc:
            # Written by a newer or foreign writer: the identifier is unusable here, said once a read.
            log.error("unreadable configuration", identifier=identifier, error=str(exc))

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._marks.close()
