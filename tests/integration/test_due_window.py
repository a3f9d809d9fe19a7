"""A retry stage on a real broker: no record handled before its kretry-due-at, and a record due sooner is not kept
waiting behind one due later in the same retry topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kretry import Message, Retrier, RetryLater
from kretry import headers as hdr
from tests.integration.kit import committed, header, produce, read_to_end, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def make(bootstrap: str) -> Retrier:
    return Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))


def test_no_record_is_handled_before_its_due_time(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("early", partitions=3)
    retrier = make(bootstrap)
    count = 300
    failed: dict[bytes, float] = {}  # the earliest each record may be handled again: when it failed, plus its delay
    handled: dict[bytes, float] = {}
    lock = threading.Lock()

    @retrier.handler(topic, delays=["150ms"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            after = 0.05 + (int(msg.value) % 7) * 0.0373  # due times at every sub-millisecond
            failed[msg.value] = time.time() + after
            raise RetryLater(after=after)
        with lock:
            handled.setdefault(msg.value, time.time())

    with running(retrier):
        produce(bootstrap, topic, [(None, str(n).encode(), None) for n in range(count)])
        wait_until(lambda: len(handled) == count, timeout=60, what="every retried record handled")

    due = {m.value(): int(header(m, hdr.DUE_AT) or 0) for m in read_to_end(bootstrap, f"{topic}_retry_1")}
    early = {value: (at - due[value] / 1000) * 1000 for value, at in handled.items() if at * 1000 < due[value]}
    assert len(due) == count
    assert early == {}, f"handled before kretry-due-at (ms): {early}"
    # kretry-due-at is never before the delay is over (truncated to the ms it was, for most records)
    short = {value: at * 1000 - due[value] for value, at in failed.items() if due[value] < at * 1000}
    assert short == {}, f"kretry-due-at before the failure plus its delay (ms): {short}"


def test_a_shorter_retry_later_is_not_kept_waiting_behind_a_longer_delay(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("window")
    retrier = make(bootstrap)
    failed: dict[bytes, float] = {}
    handled: dict[bytes, float] = {}

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            failed[msg.value] = time.time()
            if msg.value == b"soon":
                raise RetryLater(after=0.3)
            raise RuntimeError("down for the tier's delay")
        handled[msg.value] = time.time()

    with running(retrier):
        # One partition: in the retry topic "soon" sits behind "late", which is due 0.7 s after it.
        produce(bootstrap, topic, [(b"k", b"late", None), (b"k", b"soon", None)])
        wait_until(lambda: len(handled) == 2, timeout=30, what="both retried records handled")

    retry = read_to_end(bootstrap, f"{topic}_retry_1")
    assert [m.value() for m in retry] == [b"late", b"soon"]
    waited = {value: handled[value] - failed[value] for value in handled}
    assert 0.3 <= waited[b"soon"] < 0.7, waited  # at its own due time, not after the record ahead of it (1 s)
    assert 1.0 <= waited[b"late"] < 1.5, waited


def test_a_worker_stopped_while_records_wait_in_memory_commits_nothing_past_them(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = new_topic("held")
    retrier = make(bootstrap)
    handled: list[tuple[bytes, int]] = []

    @retrier.handler(topic, delays=["3s"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0:
            if msg.value == b"soon":
                raise RetryLater(after=0.3)
            raise RuntimeError("down for the tier's delay")
        handled.append((msg.value, msg.attempt))

    retry, group = f"{topic}_retry_1", f"{retrier.group_id}.{topic}_retry_1"
    with running(retrier):
        produce(bootstrap, topic, [(b"k", b"late", None), (b"k", b"soon", None)])
        wait_until(lambda: handled == [(b"soon", 1)], timeout=30, what="the record due sooner handled")
    # "late" (offset 0) was still waiting in memory: the group's offset stays at it, "soon" done behind it or not.
    assert committed(bootstrap, group, retry) in ([0], [-1001])

    with running(retrier):
        wait_until(lambda: (b"late", 1) in handled, timeout=30, what="the held record handled after a restart")
        wait_until(lambda: committed(bootstrap, group, retry) == [2], timeout=30, what="both records committed")
