"""Posts decided where they are taken (kretry.gateway.direct) and the ledger they share with the owner's loop: the
decisions and what is put back when the broker refuses, with a recording stand-in for the producer. What the broker
does with these records is tested on a real one (tests/integration/test_gateway_api.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from kretry.config import load_as
from kretry.gateway import configs, counts
from kretry.gateway.configs import Config
from kretry.gateway.direct import REFUSED, Direct
from kretry.gateway.events import POST, Count, Reply, Request, Scheduled, canonical, event_id
from kretry.gateway.ledger import Ledger
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.topics import Names, request_partition

SETTINGS = load_as(GatewaySettings, {"gateway_partitions": 2}, environ={})
NAMES = Names("t")
CONFIG = configs.parse(
    {
        "identifier": "shop",
        "maxRetry": 2,
        "retryDelays": ["1h", "2h"],
        "integrations": [{"type": "HTTP", "config": {"url": "http://a/hook"}}],
    }
)
KEY = event_id("shop", canonical({"a": 1})).encode()
PARTITION = request_partition(KEY, 2)


class Configs:
    def get(self, identifier: str) -> Config | None:
        return CONFIG if identifier == "shop" else None


class Recorder:
    """What Direct sends, each record's acknowledgement left to the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, int, Any]] = []
        self.headers: list[Any] = []
        self.restored: list[tuple[str, bytes | None, int]] = []
        self.settled: list[tuple[asyncio.Future[Any], Any]] = []

    def produce(self, topic: str, key: Any, value: Any, headers: Any, partition: int, on_delivery: Any) -> None:
        self.sent.append((topic, value, partition, on_delivery))
        self.headers.append(headers)

    def send_nowait(self, topic: str, key: Any, value: bytes | None, partition: int = -1) -> None:
        self.restored.append((topic, value, partition))

    def settle_soon(self, future: asyncio.Future[Any], result: Any) -> None:
        self.settled.append((future, result))


def _request(rid: str) -> Request:
    return Request(POST, rid, "me", int(time.time() * 1000) + 10_000, "shop", b'{"a":1}')


def _ledger(owned: bool = True) -> Ledger:
    ledger = Ledger(Configs())
    if owned:
        ledger.own(PARTITION, {})
    return ledger


def _post(direct: Direct, rid: str) -> Reply | None:
    async def go() -> Reply | None:
        answer = direct.post(_request(rid), KEY)
        return None if answer is None else (answer.result() if answer.done() else None)

    return asyncio.run(go())


def test_a_post_of_a_partition_owned_elsewhere_is_left_to_its_owner() -> None:
    outbox = Recorder()
    direct = Direct(SETTINGS, NAMES, outbox, _ledger(owned=False))  # type: ignore[arg-type]
    assert asyncio.run(_answer_of(direct, "r1")) is None
    assert outbox.sent == []


async def _answer_of(direct: Direct, rid: str) -> asyncio.Future[Reply] | None:
    return direct.post(_request(rid), KEY)


def test_a_post_sends_its_event_and_count_and_is_answered_once_both_are_acknowledged() -> None:
    outbox = Recorder()
    ledger = _ledger()
    direct = Direct(SETTINGS, NAMES, outbox, ledger)  # type: ignore[arg-type]
    assert _post(direct, "r1") is None  # not answered before the acknowledgements
    (event_topic, body, _, ack_event), (count_topic, count, partition, ack_count) = outbox.sent
    assert event_topic == NAMES.bucket(2048)
    assert body == b'{"a":1}'
    assert (count_topic, partition) == (NAMES.counts, PARTITION)
    assert count is not None
    assert Count.decode(count).n == 1
    ack_event(None)
    assert outbox.settled == []
    ack_count(None)
    [(_, reply)] = outbox.settled
    assert (reply.status, reply.text) == (200, counts.FIRST)
    assert ledger.tables[PARTITION][KEY.decode()].n == 1


def test_a_refused_record_answers_503_and_puts_the_count_back() -> None:
    outbox = Recorder()
    ledger = _ledger()
    direct = Direct(SETTINGS, NAMES, outbox, ledger)  # type: ignore[arg-type]
    _post(direct, "r1")
    for *_, ack in outbox.sent:
        ack(None)
    _post(direct, "r2")
    second_event, second_count = outbox.sent[2][3], outbox.sent[3][3]
    second_event("Broker: topic gone")
    second_count(None)  # the count was written: it must be written back as it was
    (_, first), (_, refused) = outbox.settled
    assert (first.status, refused.status, refused.text) == (200, 503, REFUSED)
    assert ledger.tables[PARTITION][KEY.decode()].n == 1
    [(topic, value, partition)] = outbox.restored
    assert (topic, partition) == (NAMES.counts, PARTITION)
    assert value is not None
    assert Count.decode(value).n == 1


def test_a_refusal_does_not_undo_a_later_decision() -> None:
    outbox = Recorder()
    ledger = _ledger()
    direct = Direct(SETTINGS, NAMES, outbox, ledger)  # type: ignore[arg-type]
    _post(direct, "r1")
    _post(direct, "r2")  # decided on top of r1 before r1 was acknowledged
    for *_, ack in outbox.sent[:2]:
        ack("refused")
    for *_, ack in outbox.sent[2:]:
        ack(None)
    assert ledger.tables[PARTITION][KEY.decode()].n == 2  # one ahead: refuses a post early, never lets one through
    assert outbox.restored == []


def test_max_retry_is_answered_at_once_without_a_record() -> None:
    outbox = Recorder()
    direct = Direct(SETTINGS, NAMES, outbox, _ledger())  # type: ignore[arg-type]
    for rid in ("r1", "r2"):
        _post(direct, rid)
    assert _post(direct, "r3") == Reply("r3", 412, counts.EXCEEDED)
    assert len(outbox.sent) == 4


def test_a_key_the_owners_loop_is_deciding_goes_the_owners_way() -> None:
    outbox = Recorder()
    ledger = _ledger()
    ledger.busy.add(KEY.decode())
    direct = Direct(SETTINGS, NAMES, outbox, ledger)  # type: ignore[arg-type]
    assert asyncio.run(_answer_of(direct, "r1")) is None
    assert outbox.sent == []


def test_a_partition_is_given_up_only_once_its_direct_decisions_were_acknowledged() -> None:
    ledger = _ledger()
    with ledger.lock:
        ledger.begin(PARTITION)
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(ledger.give_up([PARTITION], 10)))
    waiter.start()
    time.sleep(0.2)
    assert done == []
    assert PARTITION not in ledger.tables
    with ledger.lock:
        ledger.end(PARTITION)
    waiter.join(5)
    assert done == [True]


def test_giving_up_reports_decisions_left_unacknowledged() -> None:
    ledger = _ledger()
    with ledger.lock:
        ledger.begin(PARTITION)
    assert ledger.give_up([PARTITION], 0.1) is False


def test_an_event_is_never_due_before_its_delay_has_passed_since_the_post() -> None:
    """Due times are whole milliseconds: counted from a time rounded down, an event could be delivered up to a
    millisecond before its delay had passed."""
    for n in range(50):
        outbox = Recorder()
        direct = Direct(SETTINGS, NAMES, outbox, _ledger())  # type: ignore[arg-type]
        before = time.time()
        _post(direct, f"r{n}")
        event = Scheduled.read(outbox.headers[0])
        assert event is not None
        assert event.due_ms >= before * 1000 + 3_600_000
