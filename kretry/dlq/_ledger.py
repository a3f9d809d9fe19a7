"""The ledger ``<dlq>.replayed``: which DLQ records were replayed or discarded. Read it, create it, write to it."""

from __future__ import annotations

import json

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kretry.dlq._reader import Reader
from kretry.dlq._records import REPLAYED, DeadRecord, LedgerEntry, format_position, ledger_topic
from kretry.errors import TopologyError


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
                topic = v["topic"]
                entries[key] = LedgerEntry(
                    int(v["ts"]),
                    None if topic is None else str(topic),
                    int(v["replays"]),
                    int(v["at"]),
                    str(v.get("action", REPLAYED)),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
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


def ledger_entry(record: DeadRecord, now_ms: int, action: str = REPLAYED) -> tuple[bytes, bytes]:
    """The ledger's key and value that mark ``record`` replayed (once more) or discarded at ``now_ms``."""
    replays = record.replays + 1 if action == REPLAYED else record.replays
    value = {"ts": record.timestamp, "topic": record.origin_topic, "replays": replays, "at": now_ms, "action": action}
    return format_position(record.position).encode(), json.dumps(value).encode()
