"""What a dead letter tells on a real broker: the exception's class and stack in the DLQ, and a log line for every
one of a burst, with the DLQ position that `kretry dlq replay --offset` takes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from kretry import Message, NonRetryable, Retrier
from kretry import headers as hdr
from tests.integration.kit import header, produce, read_all, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


class PaymentDeclined(Exception):
    pass


@pytest.fixture
def events() -> Iterator[list[dict[str, object]]]:
    """kretry's log events as structlog hands them over, at every level."""
    captured: list[dict[str, object]] = []

    def keep(_logger: object, _name: str, event: dict[str, object]) -> dict[str, object]:
        captured.append(dict(event))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, keep],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield captured
    finally:
        structlog.configure(**old)


def test_the_dlq_carries_the_qualified_class_and_the_end_of_the_stack(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("why")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))

    def charge(amount: int) -> None:
        raise PaymentDeclined(f"card declined for {amount}")

    @retrier.handler(topic, delays=[])
    def handle(msg: Message) -> None:
        charge(42)

    with running(retrier):
        produce(bootstrap, topic, [(b"k", b"v", None)])
        (dead,) = read_all(bootstrap, retrier.dlq_topic or "", expected=1)

    assert header(dead, hdr.ERROR_CLASS) == f"{__name__}.PaymentDeclined".encode()
    trace = (header(dead, hdr.ERROR_TRACE) or b"").decode()
    assert f'File "{__file__}",' in trace
    assert trace.index("in handle\n") < trace.index("in charge\n")  # innermost last, as Python prints it
    assert trace.rstrip().endswith("PaymentDeclined: card declined for 42")
    assert len(trace.encode()) <= hdr.TRACE_MAX_BYTES


def test_every_dead_letter_of_a_burst_is_accounted_in_the_logs_with_its_dlq_position(
    bootstrap: str, new_topic: NewTopic, events: list[dict[str, object]]
) -> None:
    topic = new_topic("burst")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        raise NonRetryable("poison")

    with running(retrier):
        produce(bootstrap, topic, [(f"k{i}".encode(), b"v", None) for i in range(12)])
        dead = read_all(bootstrap, retrier.dlq_topic or "", expected=12)

        def accounted() -> int:
            full = [e for e in events if e["event"] == "record dead-lettered"]
            more = [e for e in events if e["event"] == "more records dead-lettered"]
            return len(full) + sum(int(str(e["count"])) for e in more)

        wait_until(lambda: accounted() == 12, timeout=15, what="every dead letter in the log")

    (first,) = [e for e in events if e["event"] == "record dead-lettered"]
    assert first["level"] == "warning"
    assert first["key"] == "k0"
    assert first["origin"] == f"{topic}[0]@0"
    positions = {f"{m.partition()}:{m.offset()}" for m in dead}
    assert first["dlq"] in positions
    (more,) = [e for e in events if e["event"] == "more records dead-lettered"]
    samples = more["first"]
    assert isinstance(samples, list)
    assert all(s["dlq"] in positions for s in samples)
    json.dumps(more, default=str)  # a JSON log renderer can write it
