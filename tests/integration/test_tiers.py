"""Equal delays in a row share one retry topic on a real broker: the attempt travels in kretry-attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from kretry import Message, Retrier, TopologyError, Worker
from kretry import headers as hdr
from tests.integration.kit import create_topics, end_offsets, header, produce, read_all, unique
from tests.integration.workers import running

NewTopic = Callable[..., str]
TAIL = 4  # attempts 2..5 share <T>_retry_2


def test_an_equal_tail_loops_on_one_topic_then_reaches_the_dlq(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("tail")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    seen: dict[bytes, list[tuple[int, str, float]]] = {}
    lock = threading.Lock()

    @retrier.handler(topic, delays=["0s"] + ["50ms"] * TAIL)
    def handle(msg: Message) -> None:
        with lock:
            seen.setdefault(msg.raw_key or b"", []).append((msg.attempt, msg.topic, time.monotonic()))
        if msg.raw_key == b"twice" and msg.attempt >= 2:
            return  # succeeds at its first try on the shared topic
        raise RuntimeError(f"failing at {msg.attempt}")

    keys = [b"p1", b"twice", b"p2"]  # one partition: the two looping records share it with a succeeding one
    with running(retrier) as worker:
        assert [s.spec.topic for s in worker.stages] == [topic, f"{topic}_retry_1", f"{topic}_retry_2"]
        produce(bootstrap, topic, [(k, b"v-" + k, None) for k in keys])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=2)

    shared = f"{topic}_retry_2"
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert sorted(t for t in meta.topics if t.startswith(topic)) == [topic, f"{topic}_retry_1", shared]

    path = [topic, f"{topic}_retry_1"] + [shared] * TAIL
    for key in (b"p1", b"p2"):
        assert [(a, t) for a, t, _ in seen[key]] == list(zip(range(TAIL + 2), path, strict=True))
        # Each loop on the shared topic waited its delay: it was appended at the end with its due time.
        waits = [b[2] - a[2] for a, b in zip(seen[key][1:], seen[key][2:], strict=False)]
        assert all(w >= 0.045 for w in waits), waits
    assert [(a, t) for a, t, _ in seen[b"twice"]] == [(0, topic), (1, f"{topic}_retry_1"), (2, shared)]

    assert sorted(m.key() for m in dead) == [b"p1", b"p2"]
    for m in dead:
        assert header(m, hdr.ATTEMPT) == b"%d" % (TAIL + 2)  # attempts made: the main try and every retry
        assert header(m, hdr.ORIGIN_TOPIC) == topic.encode()
        assert header(m, hdr.ORIGIN_OFFSET) == b"%d" % keys.index(m.key())
        assert m.value() == b"v-" + m.key()
    # A copy on the shared topic per attempt there: TAIL for each poison record, one for the record that succeeded.
    assert end_offsets(bootstrap, shared) == [2 * TAIL + 1]


def test_a_retry_topic_of_the_old_schedule_still_holding_records_stops_the_start(
    bootstrap: str, new_topic: NewTopic
) -> None:
    # Before the upgrade ["1s", "1s"] had two retry topics; now they share <T>_retry_1, and nothing reads _retry_2.
    topic = new_topic("upgrade")
    old = f"{topic}_retry_2"
    create_topics(bootstrap, [old])
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    retrier.handler(topic, delays=["1s", "1s"])(lambda msg: None)
    ours, theirs = [(hdr.GROUP, retrier.group_id.encode())], [(hdr.GROUP, b"another-service")]
    produce(bootstrap, old, [(b"a", b"handled", ours), (b"b", b"another service's", theirs), (b"c", b"waiting", ours)])
    group = f"{retrier.group_id}.{old}"

    def old_stage_committed(offset: int) -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(old, 0, offset)], asynchronous=False)
        finally:
            consumer.close()

    # A topic the old stage never committed on was never ours: the worker starts (another service's tiers, say).
    with running(retrier):
        pass
    old_stage_committed(1)  # it handled "a"; "c" of ours still waits behind "b", another service's
    with pytest.raises(TopologyError, match=rf"{old} holds 1 records of {retrier.group_id} .* previous schedule"):
        Worker(retrier).start()
    old_stage_committed(3)  # drained
    with running(retrier):
        pass
