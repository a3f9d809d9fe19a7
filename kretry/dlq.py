"""The dead-letter queue from the outside: peek, replay and summarise it. Plain functions that return data.

Replay bookkeeping (why replaying twice never replays a DLQ record twice):

* The ledger ``<dlq>.replayed`` is a compacted topic keyed ``partition:offset`` of the DLQ record; its value is
  JSON ``{"ts": <the DLQ record's timestamp>, "topic": <origin>, "replays": n, "at": <epoch ms>}``. A DLQ record
  is "already replayed" exactly when the ledger holds its key with the same timestamp (the timestamp guards
  against a DLQ topic deleted and re-created, whose offsets start again at 0). ``--offset`` and ``--count``
  both consult it, so neither replays what the other already did.
* The cursor: the committed offsets of the consumer group ``kretry-replay.<dlq>`` on the DLQ. Every record below
  it is settled (replayed, or refused for having been replayed ``max_replays`` times already), so ``--count``
  starts scanning there instead of at the start of the DLQ. It is an optimisation; the ledger is the truth.
* Order: produce to the origin topic and wait for every acknowledgement; only then write the ledger entries and
  wait for theirs; only then commit the cursor. A crash in between replays a record again on the next run
  (at least once), never loses one.
* One replay at a time per DLQ: two concurrent replays may both take the same record.

Nothing here commits anything but ``replay`` (not in dry-run mode); ``peek`` and ``summary`` only read.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kretry import config
from kretry import headers as hdr
from kretry.config import Settings
from kretry.errors import BrokerUnavailable, ConfigError, TopologyError

DEFAULT_MAX_REPLAYS = 3
LEDGER_SUFFIX = ".replayed"
SCAN_TIMEOUT = 30.0  # seconds to read one partition range before giving up
ACK_TIMEOUT = 30.0

Position = tuple[int, int]  # (partition, offset) of a DLQ record


# -- pure parts ---------------------------------------------------------------------------------------------


def parse_position(text: str) -> Position:
    """``"2:15"`` -> ``(2, 15)``: a DLQ record's partition and offset."""
    part, sep, off = text.strip().partition(":")
    if not sep or not part.isdigit() or not off.isdigit():
        raise ValueError(f"{text!r}: expected PARTITION:OFFSET, e.g. 0:42")
    return int(part), int(off)


def format_position(position: Position) -> str:
    return f"{position[0]}:{position[1]}"


def ledger_topic(dlq_topic: str) -> str:
    return dlq_topic + LEDGER_SUFFIX


def replay_group(dlq_topic: str) -> str:
    return f"kretry-replay.{dlq_topic}"


def error_type(error: str | None) -> str:
    """The part of ``kretry-error`` before the first ':' (``"RuntimeError: boom"`` -> ``"RuntimeError"``)."""
    if not error:
        return "(none)"
    return error.split(":", 1)[0].strip() or "(none)"


@dataclass(frozen=True)
class DeadRecord:
    partition: int
    offset: int
    timestamp: int  # ms, the DLQ record's own
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers  # the producer's, as they came
    state: hdr.State  # kretry's

    @property
    def position(self) -> Position:
        return self.partition, self.offset

    @property
    def origin_topic(self) -> str | None:
        return self.state.origin_topic

    @property
    def replays(self) -> int:
        return self.state.replays or 0

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "dlq": format_position(self.position),
            "key": _text(self.key),
            "value": _text(self.value),
            "headers": {name: _text(value) for name, value in self.headers},
            "origin": {"topic": s.origin_topic, "partition": s.origin_partition, "offset": s.origin_offset},
            "origin_timestamp": s.origin_timestamp,
            "attempt": s.attempt,
            "error": s.error,
            "group": s.group,
            "replays": self.replays,
            "timestamp": self.timestamp,
            "time": _iso(self.timestamp),
        }


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="backslashreplace")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def matches(record: DeadRecord, origin_topic: str | None = None, error: str | None = None) -> bool:
    """``origin_topic`` exactly, ``error`` as a case-insensitive substring of kretry-error."""
    if origin_topic is not None and record.origin_topic != origin_topic:
        return False
    return error is None or error.lower() in (record.state.error or "").lower()


def oldest_first(records: Iterable[DeadRecord], count: int) -> list[DeadRecord]:
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))[:count]


@dataclass(frozen=True)
class LedgerEntry:
    timestamp: int
    topic: str
    replays: int
    at: int


def is_replayed(record: DeadRecord, ledger: Mapping[str, LedgerEntry]) -> LedgerEntry | None:
    entry = ledger.get(format_position(record.position))
    return entry if entry is not None and entry.timestamp == record.timestamp else None


def refusal(
    record: DeadRecord, ledger: Mapping[str, LedgerEntry], topics: Mapping[str, int], max_replays: int
) -> str | None:
    """Why ``record`` may not be replayed, or None. ``topics``: the cluster's topics and their widths."""
    done = is_replayed(record, ledger)
    if done is not None:
        return f"already replayed to {done.topic} at {_iso(done.at)}"
    if record.origin_topic is None:
        return "no kretry-origin-topic header"
    if record.origin_topic not in topics:
        return f"origin topic {record.origin_topic!r} does not exist"
    if record.replays >= max_replays:
        return f"replayed {record.replays} times already (--max-replays {max_replays})"
    return None


def replay_headers(record: DeadRecord) -> hdr.Headers:
    """The producer's headers, unchanged, plus ``kretry-replays``: one more than the record carries."""
    return [*record.headers, (hdr.REPLAYS, str(record.replays + 1).encode())]


def advance(start: int, scanned: Sequence[tuple[int, bool]]) -> int:
    """The new cursor of a partition: past the run of settled records that begins at ``start``."""
    cursor = start
    for offset, settled in scanned:
        if not settled:
            break
        cursor = offset + 1
    return cursor


@dataclass
class Summary:
    total: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_error: Counter[tuple[str, str]] = field(default_factory=Counter)  # (origin topic, error type)
    oldest: int | None = None
    newest: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_topic": dict(self.by_topic),
            "by_error": [{"topic": t, "error": e, "count": n} for (t, e), n in sorted(self.by_error.items())],
            "oldest": _iso(self.oldest),
            "newest": _iso(self.newest),
        }


def summarize(records: Iterable[DeadRecord]) -> Summary:
    summary = Summary()
    for record in records:
        topic = record.origin_topic or "(unknown)"
        summary.total += 1
        summary.by_topic[topic] += 1
        summary.by_error[(topic, error_type(record.state.error))] += 1
        summary.oldest = record.timestamp if summary.oldest is None else min(summary.oldest, record.timestamp)
        summary.newest = record.timestamp if summary.newest is None else max(summary.newest, record.timestamp)
    return summary


# -- Kafka --------------------------------------------------------------------------------------------------


class _Dlq:
    """Read access to one DLQ: its partitions, its records, its ledger. Commits nothing."""

    def __init__(self, settings: Settings) -> None:
        if settings.dlq_topic is None:
            raise ConfigError("no DLQ configured: set KRETRY_DLQ_TOPIC or give an APP whose Retrier has one")
        self.settings = settings
        self.topic: str = settings.dlq_topic
        self.admin = AdminClient(config.admin_conf(settings))
        try:
            meta = self.admin.list_topics(timeout=10)
        except KafkaException as exc:
            raise BrokerUnavailable(f"no answer from {settings.bootstrap_servers}: {exc}") from None
        if self.topic not in meta.topics or meta.topics[self.topic].error is not None:
            raise TopologyError(f"DLQ topic {self.topic!r} does not exist on {settings.bootstrap_servers}")
        self.partitions = sorted(meta.topics[self.topic].partitions)
        self.widths = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        conf = config.consumer_conf(settings, f"kretry-reader-{uuid.uuid4().hex[:8]}", main=False)
        self.consumer = Consumer({**conf, "enable.auto.commit": False})

    def close(self) -> None:
        self.consumer.close()

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)

    def scan(self, topic: str, partition: int, start: int, end: int) -> Iterator[Any]:
        """The raw records of ``topic[partition]`` from ``start`` up to (not including) ``end``."""
        if start >= end:
            return
        self.consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + SCAN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                for msg in self.consumer.consume(500, 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return
                        raise KafkaException(err)
                    offset = msg.offset()
                    if offset is None or offset >= end:
                        return
                    yield msg
                    if offset >= end - 1:
                        return
                    deadline = time.monotonic() + SCAN_TIMEOUT
            raise BrokerUnavailable(f"reading {topic}[{partition}] from {start}: nothing for {SCAN_TIMEOUT:.0f}s")
        finally:
            self.consumer.unassign()

    def records(self, partition: int, start: int, end: int) -> Iterator[DeadRecord]:
        for msg in self.scan(self.topic, partition, start, end):
            user, ours = hdr.split(msg.headers())
            yield DeadRecord(
                msg.partition(), msg.offset(), msg.timestamp()[1], msg.key(), msg.value(), user, hdr.read(ours)
            )

    def record_at(self, position: Position) -> DeadRecord | None:
        partition, offset = position
        if partition not in self.partitions:
            return None
        low, high = self.watermarks(self.topic, partition)
        if not low <= offset < high:
            return None
        found = next(self.records(partition, offset, offset + 1), None)
        return found if found is not None and found.offset == offset else None

    def ledger(self) -> dict[str, LedgerEntry]:
        name = ledger_topic(self.topic)
        if name not in self.widths:
            return {}
        entries: dict[str, LedgerEntry] = {}
        for partition in range(self.widths[name]):
            low, high = self.watermarks(name, partition)
            for msg in self.scan(name, partition, low, high):
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

    def cursor(self) -> dict[int, int]:
        """The replay cursor per partition, never below the start of what the DLQ still holds."""
        conf = config.consumer_conf(self.settings, replay_group(self.topic), main=False)
        probe = Consumer({**conf, "enable.auto.commit": False})
        try:
            committed = probe.committed([TopicPartition(self.topic, p) for p in self.partitions], timeout=10)
        finally:
            probe.close()
        return {tp.partition: max(tp.offset, self.watermarks(self.topic, tp.partition)[0]) for tp in committed}


def peek(
    settings: Settings,
    count: int = 10,
    *,
    origin_topic: str | None = None,
    error: str | None = None,
    include_replayed: bool = False,
) -> list[DeadRecord]:
    """The oldest ``count`` DLQ records not yet replayed (all of them with ``include_replayed``), matching."""
    if count < 1:
        raise ValueError("count must be at least 1")
    dlq = _Dlq(settings)
    try:
        ledger = {} if include_replayed else dlq.ledger()
        found: list[DeadRecord] = []
        for partition in dlq.partitions:
            low, high = dlq.watermarks(dlq.topic, partition)
            taken = 0
            for record in dlq.records(partition, low, high):
                if matches(record, origin_topic, error) and is_replayed(record, ledger) is None:
                    found.append(record)
                    taken += 1
                    if taken >= count:
                        break
        return oldest_first(found, count)
    finally:
        dlq.close()


def summary(settings: Settings) -> Summary:
    dlq = _Dlq(settings)
    try:
        records: list[DeadRecord] = []
        for partition in dlq.partitions:
            low, high = dlq.watermarks(dlq.topic, partition)
            records.extend(dlq.records(partition, low, high))
        return summarize(records)
    finally:
        dlq.close()


@dataclass(frozen=True)
class Outcome:
    position: Position
    origin_topic: str | None
    replays: int  # the kretry-replays the replayed record carries (or would carry)
    refused: str | None = None  # why it was not replayed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dlq": format_position(self.position), "topic": self.origin_topic}
        if self.refused is None:
            out["replays"] = self.replays
        else:
            out["refused"] = self.refused
        return out


@dataclass
class ReplayReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def replayed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is None]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.refused is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "replayed": [o.to_json() for o in self.replayed],
            "refused": [o.to_json() for o in self.refused],
        }


def replay(
    settings: Settings,
    *,
    count: int | None = None,
    offsets: Sequence[Position] = (),
    origin_topic: str | None = None,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    dry_run: bool = False,
) -> ReplayReport:
    """Put DLQ records back on their origin topic: the oldest ``count`` not yet replayed, or those at ``offsets``."""
    if (count is None) == (not offsets):
        raise ValueError("give either count or offsets")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    if max_replays < 0:
        raise ValueError("max_replays must be >= 0")
    dlq = _Dlq(settings)
    try:
        ledger = dlq.ledger()
        report = ReplayReport(dry_run)
        scanned: dict[int, list[DeadRecord]] = {}
        starts: dict[int, int] = {}
        if count is not None:
            candidates, scanned, starts = _candidates(dlq, ledger, count, origin_topic)
        else:
            candidates = []
            for position in dict.fromkeys(offsets):
                record = dlq.record_at(position)
                if record is None:
                    report.outcomes.append(Outcome(position, None, 0, f"no record at {format_position(position)}"))
                elif not matches(record, origin_topic):
                    report.outcomes.append(Outcome(position, record.origin_topic, 0, "origin topic does not match"))
                else:
                    candidates.append(record)
        accepted: list[DeadRecord] = []
        for record in candidates:
            why = refusal(record, ledger, dlq.widths, max_replays)
            if why is None:
                accepted.append(record)
            else:
                report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))
        if dry_run:
            report.outcomes.extend(Outcome(r.position, r.origin_topic, r.replays + 1) for r in accepted)
            return report
        delivered = _produce_back(settings, accepted, dlq.widths, report)
        _write_ledger(dlq, delivered)
        if count is not None:
            settled = {r.position for r in delivered} | {
                r.position for r in candidates if r.replays >= max_replays and is_replayed(r, ledger) is None
            }
            _commit_cursor(dlq, starts, scanned, ledger, settled)
        return report
    finally:
        dlq.close()


def _candidates(
    dlq: _Dlq, ledger: Mapping[str, LedgerEntry], count: int, origin_topic: str | None
) -> tuple[list[DeadRecord], dict[int, list[DeadRecord]], dict[int, int]]:
    """The oldest ``count`` matching records not yet replayed, from the cursor on; and what was scanned."""
    cursor = dlq.cursor()
    scanned: dict[int, list[DeadRecord]] = {}
    found: list[DeadRecord] = []
    for partition in dlq.partitions:
        _, high = dlq.watermarks(dlq.topic, partition)
        taken = 0
        scanned[partition] = []
        for record in dlq.records(partition, cursor[partition], high):
            scanned[partition].append(record)
            if matches(record, origin_topic) and is_replayed(record, ledger) is None:
                found.append(record)
                taken += 1
                if taken >= count:
                    break
    return oldest_first(found, count), scanned, cursor


def _produce_back(
    settings: Settings, records: Sequence[DeadRecord], widths: Mapping[str, int], report: ReplayReport
) -> list[DeadRecord]:
    """Produce each record to its origin topic; return those the broker acknowledged."""
    if not records:
        return []
    producer = Producer(config.producer_conf(settings))
    errors: dict[Position, str] = {}

    def on_delivery(position: Position) -> Any:
        def callback(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors[position] = err.str()

        return callback

    for record in records:
        topic = record.origin_topic
        assert topic is not None  # refusal() let no record without one through
        kwargs: dict[str, Any] = {"headers": replay_headers(record)}
        part = record.state.origin_partition
        if part is not None and part < widths.get(topic, 0):
            kwargs["partition"] = part  # where the producer had put it; the key decides otherwise
        try:
            producer.produce(
                topic,
                key=record.key,
                value=record.value,
                on_delivery=on_delivery(record.position),
                **kwargs,
            )
        except (KafkaException, BufferError) as exc:
            errors[record.position] = str(exc)
        producer.poll(0)
    left = producer.flush(ACK_TIMEOUT)
    if left:
        raise BrokerUnavailable(f"{left} replayed records unacknowledged after {ACK_TIMEOUT:.0f}s; none marked done")
    delivered = []
    for record in records:
        if record.position in errors:
            why = f"produce to {record.origin_topic} failed: {errors[record.position]}"
            report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays, why))
        else:
            delivered.append(record)
            report.outcomes.append(Outcome(record.position, record.origin_topic, record.replays + 1))
    return delivered


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


def _write_ledger(dlq: _Dlq, delivered: Sequence[DeadRecord]) -> None:
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


def _commit_cursor(
    dlq: _Dlq,
    starts: Mapping[int, int],
    scanned: Mapping[int, Sequence[DeadRecord]],
    ledger: Mapping[str, LedgerEntry],
    settled_now: set[Position],
) -> None:
    moves = []
    for partition, records in scanned.items():
        flags = [(r.offset, r.position in settled_now or is_replayed(r, ledger) is not None) for r in records]
        new = advance(starts[partition], flags)
        if new > starts[partition]:
            moves.append(TopicPartition(dlq.topic, partition, new))
    if not moves:
        return
    conf = config.consumer_conf(dlq.settings, replay_group(dlq.topic), main=False)
    committer = Consumer({**conf, "enable.auto.commit": False})
    try:
        committer.commit(offsets=moves, asynchronous=False)
    finally:
        committer.close()
