"""The replay ledger ``<dlq>.replayed``: which DLQ records were replayed. Read it, create it, write to it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kretry import config
from kretry.dlq._reader import Reader
from kretry.dlq._records import DeadRecord, LedgerEntry, format_position, ledger_topic
from kretry.errors import BrokerUnavailable, TopologyError

ACK_TIMEOUT = 30.0


def read_ledger(dlq: Reader) -> dict[str, LedgerEntry]:
    """The ledger's entries by DLQ position; an absent ledger marks nothing."""
    name = ledger_topic(dlq.topic)
    if name not in dlq.widths:
        return {}
    entries: dict[str, LedgerEntry] = {}
    for partition in range(dlq.widths[name]):
        low, high = dlq.watermarks(name, partition)
        for msg in dlq.scan(name, partition, low, high):
            key = (msg.key() or b"").decode("utf-8", errors="replace")
            if msg.value() is None:
                entries.pop(key, None)
                continue
            try:
                v = json.loads(msg.value())
                entries[key] = LedgerEntry(int(v["ts"]), str(v["topic"]), int(v["replays"]), int(v["at"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours; an unreadable entry marks nothing
    return entries


def ensure_ledger(admin: AdminClient, dlq_topic: str) -> None:
    """Create the compacted ledger topic if absent; one that exists is left as it is."""
    name = ledger_topic(dlq_topic)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=-1, config={"cleanup.policy": "compact"})]
    )
    try:
        futures[name].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise TopologyError(f"creating the replay ledger {name!r} failed: {exc.args[0].str()}") from None


def write_ledger(dlq: Reader, delivered: Sequence[DeadRecord]) -> None:
    if not delivered:
        return
    name = ledger_topic(dlq.topic)
    if name not in dlq.widths:
        ensure_ledger(dlq.admin, dlq.topic)
    producer = Producer(config.producer_conf(dlq.settings))
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    now = int(time.time() * 1000)
    for r in delivered:
        value = {"ts": r.timestamp, "topic": r.origin_topic, "replays": r.replays + 1, "at": now}
        producer.produce(
            name, key=format_position(r.position).encode(), value=json.dumps(value).encode(), on_delivery=on_delivery
        )
        producer.poll(0)
    # A fresh topic may need a moment for its leader; the producer retries within its delivery timeout.
    left = producer.flush(ACK_TIMEOUT)
    if errors or left:
        raise BrokerUnavailable(
            f"{len(delivered)} records were replayed but the ledger {name!r} did not take them "
            f"({errors[:1] or f'{left} unacknowledged'}); a later replay may replay them again"
        )
