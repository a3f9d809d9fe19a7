"""Faults found by using kretry from outside, each on a real broker: records at the size limit, two services on one
topic, a handler that outlasts max.poll.interval.ms, a retry topic deleted while running, a foreign replay count."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from kretry import ConfigError, Message, Retrier, Worker, cli
from kretry import headers as hdr
from kretry.admin import DEFAULT_MAX_MESSAGE_BYTES, HEADROOM
from tests.integration.kit import (
    committed,
    create_topics,
    end_offsets,
    header,
    produce,
    read_all,
    read_to_end,
    unique,
    wait_for_leaders,
    wait_until,
)
from tests.integration.test_process import APP, app_env, assigned_stages
from tests.integration.workers import kretry_process, running, stop

NewTopicFactory = Callable[..., str]
BIG = 999_800  # fits a topic with the broker's default max.message.bytes, but not with kretry's headers on top


def make_retrier(bootstrap: str, group: str | None = None, dlq: str | None = None, **kafka: object) -> Retrier:
    return Retrier(
        group_id=group or unique("svc"),
        bootstrap_servers=bootstrap,
        dlq_topic=dlq or unique("dlq"),
        kafka=kafka or None,
    )


def topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return str(entries[name].value)


def test_a_record_that_fits_its_main_topic_reaches_the_retry_topic_and_the_dlq_whole(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("big")
    retrier = make_retrier(bootstrap)

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        raise RuntimeError("always")

    value = b"v" * BIG
    with running(retrier):
        produce(bootstrap, topic, [(b"big-1", value, [("trace", b"t")])])
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [1], what="the main offset")

    (retried,) = read_to_end(bootstrap, f"{topic}_retry_1")
    assert retried.value() == value
    assert dead.value() == value, "the DLQ got a stub instead of the record"
    assert dead.key() == b"big-1"
    assert header(dead, "trace") == b"t"
    assert header(dead, hdr.STUB) is None
    room = str(DEFAULT_MAX_MESSAGE_BYTES + HEADROOM)
    assert topic_config(bootstrap, f"{topic}_retry_1", "max.message.bytes") == room
    assert topic_config(bootstrap, retrier.dlq_topic or "", "max.message.bytes") == room


def test_a_key_too_large_for_the_dlq_leaves_a_keyless_stub_and_the_worker_goes_on(bootstrap: str) -> None:
    # A main topic that takes 2 MB records, next to a retry topic and DLQ made before with the broker's default.
    topic, dlq = unique("wide"), unique("dlq")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "2100000"}),
            NewTopic(f"{topic}_retry_1", num_partitions=1, replication_factor=1),
            NewTopic(dlq, num_partitions=1, replication_factor=1),
        ]
    )
    for future in futures.values():
        future.result(timeout=30)
    wait_for_leaders(admin, list(futures), 1)
    retrier = make_retrier(bootstrap, dlq=dlq, **{"message.max.bytes": 3_000_000})
    handled: list[bytes | None] = []

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        handled.append(msg.key)
        if msg.key != b"small":
            raise RuntimeError("fails")

    big_key = b"k" * 1_500_000
    with running(retrier) as worker:
        records = [(big_key, b"value", [("trace", b"t")]), (b"small", b"v", None)]
        produce(bootstrap, topic, records, **{"message.max.bytes": 3_000_000})
        (stub,) = read_all(bootstrap, dlq, expected=1)
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [2], what="both main offsets")
        assert worker.failure is None

    assert handled == [big_key, b"small"]
    assert stub.key() is None
    assert stub.value() is None
    assert header(stub, hdr.STUB) == b"key,value,headers"
    assert header(stub, hdr.ORIGIN_TOPIC) == topic.encode()
    assert header(stub, hdr.ORIGIN_OFFSET) == b"0"
    assert b"1500000-byte key dropped too" in (header(stub, hdr.ERROR) or b"")


def test_a_retry_stage_leaves_another_services_records_to_it(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = new_topic("orders", partitions=2)
    a, b = make_retrier(bootstrap, unique("svcA")), make_retrier(bootstrap, unique("svcB"))
    seen: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}

    @a.handler(topic, delays=["0s"])
    def handle_a(msg: Message) -> None:
        seen["a"].append((msg.attempt, msg.value))
        if msg.attempt == 0 and msg.value.startswith(b"fail"):
            raise RuntimeError("a fails once")

    @b.handler(topic, delays=["0s"])
    def handle_b(msg: Message) -> None:
        seen["b"].append((msg.attempt, msg.value))

    values = [f"{'fail' if i % 2 else 'ok'}-{i}".encode() for i in range(40)]
    with running(a), running(b) as worker_b:
        produce(bootstrap, topic, [(v, v, None) for v in values])
        failing = [v for v in values if v.startswith(b"fail")]
        wait_until(lambda: sorted(v for n, v in seen["a"] if n == 1) == sorted(failing), what="a's retries")
        retry_group_b = f"{b.group_id}.{topic}_retry_1"
        wait_until(
            lambda: (
                committed(bootstrap, retry_group_b, f"{topic}_retry_1", 2)
                == end_offsets(bootstrap, f"{topic}_retry_1", 2)
            ),
            what="b's retry stage to commit past a's records",
        )
        assert worker_b.metrics.count(topic, "retry_1", "other_group") == len(failing)

    assert sorted(v for _, v in seen["b"]) == sorted(values), "b handled a's retries, or missed a record"
    assert all(n == 0 for n, _ in seen["b"])


def test_a_handler_outlasting_max_poll_interval_leaves_the_rest_of_its_batch(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("slow")
    retrier = make_retrier(
        bootstrap, **{"max.poll.interval.ms": 7000, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    )
    calls: Counter[bytes] = Counter()
    slept = threading.Event()

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        calls[msg.value] += 1
        if msg.attempt == 0 and not slept.is_set():
            slept.set()
            time.sleep(10)
        if msg.attempt == 0:
            raise RuntimeError("every record fails once")

    values = [f"r-{i}".encode() for i in range(50)]
    produce(bootstrap, topic, [(None, v, None) for v in values])
    with running(retrier):
        wait_until(lambda: all(calls[v] >= 2 for v in values), timeout=60, what="every record's retry")
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic) == [50], timeout=30, what="the commit")
        retried = Counter(m.value() for m in read_to_end(bootstrap, f"{topic}_retry_1"))

    assert set(retried) == set(values)
    # Only the record whose call outlasted the interval may be handled (and forwarded) twice on the main topic.
    assert sum(retried.values()) - len(values) <= 1, f"duplicate retry records: {retried.most_common(3)}"
    assert sum(calls.values()) - 2 * len(values) <= 2, f"duplicate handler calls: {calls.most_common(3)}"


def test_a_retry_topic_deleted_while_running_is_created_again_with_its_width(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("gone", partitions=3)
    retry = f"{topic}_retry_1"
    retrier = make_retrier(bootstrap)
    retried: list[bytes] = []

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            raise RuntimeError("fails once")
        retried.append(msg.value)

    def batch(prefix: str) -> list[bytes]:
        values = [f"{prefix}-{i}".encode() for i in range(30)]
        for p in range(3):
            produce(bootstrap, topic, [(None, v, None) for v in values[p::3]], partition=p)
        return values

    admin = AdminClient({"bootstrap.servers": bootstrap})
    with running(retrier) as worker:
        first = batch("before")
        wait_until(lambda: sorted(retried) == sorted(first), what="the first batch's retries")
        admin.delete_topics([retry])[retry].result(timeout=30)
        wait_until(lambda: retry not in admin.list_topics(timeout=10).topics, what="the deletion")
        second = batch("after")
        wait_until(lambda: bool(worker.problems()), timeout=60, what="/readyz's reason")
        assert any(retry in p for p in worker.problems())
        wait_until(lambda: set(second) <= set(retried), timeout=90, what="the second batch's retries")
        assert worker.failure is None

    assert len(admin.list_topics(timeout=10).topics[retry].partitions) == 3
    assert topic_config(bootstrap, retry, "retention.ms") == str(7 * 86_400_000)


def test_client_settings_are_checked_before_any_topic_is_created(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = new_topic("typo")
    retrier = make_retrier(bootstrap, **{"fetch.wait.max.ms": "soon"})
    retrier.handler(topic, delays=["1s"])(lambda msg: None)
    with pytest.raises(ConfigError, match=r"fetch\.wait\.max\.ms"):
        Worker(retrier).start()
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert f"{topic}_retry_1" not in topics
    assert retrier.dlq_topic not in topics


def test_a_replay_count_set_by_another_service_is_not_carried_into_our_dlq(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("copied")
    retrier = make_retrier(bootstrap)

    @retrier.handler(topic, delays=[])
    def handle(msg: Message) -> None:
        raise RuntimeError("fails")

    with running(retrier):
        produce(
            bootstrap,
            topic,
            [
                (b"foreign", b"v", [(hdr.REPLAYS, b"2"), (hdr.GROUP, b"some-other-service")]),
                (b"ours", b"v", [(hdr.REPLAYS, b"2"), (hdr.GROUP, retrier.group_id.encode())]),
            ],
        )
        dead = {m.key(): m for m in read_all(bootstrap, retrier.dlq_topic or "", expected=2)}

    assert header(dead[b"foreign"], hdr.REPLAYS) is None
    assert header(dead[b"ours"], hdr.REPLAYS) == b"2"


def test_topics_check_flags_a_retry_topic_narrower_than_its_main_topics_records(bootstrap: str) -> None:
    from kretry import admin as ops

    topic = unique("check")
    create_topics(bootstrap, [topic, f"{topic}_retry_1"])
    retrier = make_retrier(bootstrap)
    retrier.handler(topic, delays=["1s"])(lambda msg: None)
    problems = ops.check(retrier).problems
    assert any(p.startswith(f"{topic}_retry_1: max.message.bytes=") for p in problems), problems


def test_a_hung_handler_cannot_keep_the_process_alive_past_the_stop_timeout(
    bootstrap: str, new_topic: NewTopicFactory, tmp_path: Path
) -> None:
    topic = new_topic("hung")
    env = app_env(bootstrap, [topic], tmp_path / "ledger.jsonl", delays="1s")
    env["APP_SLOW"] = "3600"
    log = tmp_path / "worker.log"
    proc = kretry_process(APP, env, log=log)
    try:
        wait_until(lambda: assigned_stages(log) == 2, timeout=60, what="assignment")
        produce(bootstrap, topic, [(None, b"slow-1", None), (None, b"ok-2", None)])
        time.sleep(3)  # the handler is in its hour-long sleep
        started = time.monotonic()
        code = stop(proc, signal.SIGTERM, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == cli.EXIT_STOP_TIMEOUT
    assert time.monotonic() - started < 15
    assert "stop timed out" in log.read_text()
    assert committed(bootstrap, env["APP_GROUP"], topic) in ([-1001], [0])  # the hung record stays uncommitted
