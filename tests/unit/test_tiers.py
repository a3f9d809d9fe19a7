"""Equal delays in a row share one retry tier: the pure mapping, the stages, and what a shared tier's stage does."""

from __future__ import annotations

from typing import Any

import pytest

import kretry
from kretry import Message, Retrier
from kretry import headers as hdr
from kretry import testing as kt
from kretry.admin import needs, planned, shared_tier_notes, stranded_retry_topics
from kretry.forward import Outgoing
from kretry.topology import DEFAULT_RETRY_PATTERN, Tier, attempt_topics, stage_attempt, stage_topics, tiers
from tests.unit.stages import offline_stage

TAIL = [1.0, 10.0] + [60.0] * 100  # a capped exponential tail: 102 retries


@pytest.mark.parametrize(
    ("delays", "expected"),
    [
        ([], []),
        ([5.0], [Tier(1, 1, 1, 5.0)]),
        ([1.0, 2.0, 4.0], [Tier(1, 1, 1, 1.0), Tier(2, 2, 2, 2.0), Tier(3, 3, 3, 4.0)]),
        (TAIL, [Tier(1, 1, 1, 1.0), Tier(2, 2, 2, 10.0), Tier(3, 3, 102, 60.0)]),
        ([0.0] * 4, [Tier(1, 1, 4, 0.0)]),
        # Only neighbours share: a delay that comes back after another is a tier of its own.
        ([5.0, 5.0, 1.0, 5.0], [Tier(1, 1, 2, 5.0), Tier(2, 3, 3, 1.0), Tier(3, 4, 4, 5.0)]),
    ],
)
def test_tiers_group_equal_delays_in_a_row(delays: list[float], expected: list[Tier]) -> None:
    assert tiers(delays) == expected
    assert [t.shared for t in expected] == [t.last > t.first for t in expected]


def test_a_schedule_without_repeats_keeps_one_topic_per_attempt() -> None:
    delays = [1.0, 2.0, 4.0, 8.0]
    assert attempt_topics("orders", delays) == stage_topics("orders", 4)
    assert attempt_topics("orders", delays) == [
        "orders",
        "orders_retry_1",
        "orders_retry_2",
        "orders_retry_3",
        "orders_retry_4",
    ]


def test_attempt_topics_index_every_attempt_by_its_tier() -> None:
    topics = attempt_topics("orders", TAIL, DEFAULT_RETRY_PATTERN)
    assert len(topics) == 103
    assert topics[:4] == ["orders", "orders_retry_1", "orders_retry_2", "orders_retry_3"]
    assert set(topics[3:]) == {"orders_retry_3"}
    assert attempt_topics("o", [1.0, 1.0, 2.0], "{topic}.retry.{attempt}") == [
        "o",
        "o.retry.1",
        "o.retry.1",
        "o.retry.2",
    ]


@pytest.mark.parametrize(
    ("first", "last", "carried", "attempt"),
    [
        (3, 102, 3, 3),
        (3, 102, 57, 57),
        (3, 102, 102, 102),
        (3, 102, None, 3),  # absent or unreadable: the tier's first, never fewer tries than the schedule
        (3, 102, 1, 3),  # below the tier (a record put there by hand): its first
        (3, 102, 500, 102),  # beyond it (the schedule shortened meanwhile): its last
        (2, 2, 9, 2),  # a tier of one attempt needs no header, as before tiers were shared
        (0, 0, 4, 0),  # the main topic: a replayed record's old kretry-attempt does not count
    ],
)
def test_stage_attempt_reads_the_carried_attempt_within_the_tier(
    first: int, last: int, carried: int | None, attempt: int
) -> None:
    assert stage_attempt(first, last, carried) == attempt


def test_attempt_of_reads_kretry_attempt_only() -> None:
    assert hdr.attempt_of([("a", b"1"), (hdr.ATTEMPT, b"7")]) == 7
    assert hdr.attempt_of([(hdr.ATTEMPT, b"7"), (hdr.ATTEMPT, b"8")]) == 8  # the last wins, as in split()
    assert hdr.attempt_of([(hdr.ATTEMPT, b"seven")]) is None
    assert hdr.attempt_of([(hdr.ATTEMPT, b"-1")]) is None
    assert hdr.attempt_of([(hdr.ATTEMPT, None)]) is None  # type: ignore[list-item]
    assert hdr.attempt_of(None) is None


def retrier_with(delays: Any) -> Retrier:
    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("orders", delays=delays)(lambda msg: None)
    return retrier


def test_one_stage_per_tier_not_per_attempt() -> None:
    stages = retrier_with(["1s", "10s"] + ["1m"] * 100).stages()
    assert [(s.topic, s.attempt, s.last_attempt, s.number, s.delay, s.shared) for s in stages] == [
        ("orders", 0, 0, 0, 0.0, False),
        ("orders_retry_1", 1, 1, 1, 1.0, False),
        ("orders_retry_2", 2, 2, 2, 10.0, False),
        ("orders_retry_3", 3, 102, 3, 60.0, True),
    ]
    assert [s.group for s in stages] == ["svc", "svc.orders_retry_1", "svc.orders_retry_2", "svc.orders_retry_3"]


def test_a_capped_exponential_tail_is_one_tier() -> None:
    r = retrier_with(kretry.exponential("1s", max_delay="8s", retries=100))
    assert [s.topic for s in r.stages()][-1] == "orders_retry_4"
    assert r.handlers["orders"].policy.retries == 100
    with pytest.raises(kretry.ConfigError, match="60 retry tiers; at most 50"):
        retrier_with(kretry.linear("1s", retries=60))


def test_a_shared_tier_is_planned_once_with_retention_from_its_delay() -> None:
    r = retrier_with(["1s"] + ["2d"] * 10)
    rows = [n for n in needs(r, {"orders": 3}) if n.role == "retry"]
    assert [(n.name, n.retention_ms, n.min_retention_ms) for n in rows] == [
        ("orders_retry_1", 7 * 86_400_000, 86_400_000),
        ("orders_retry_2", 7 * 86_400_000, 4 * 86_400_000),  # one 2d wait at a time, not ten
    ]
    retries = [s for s in r.stages() if s.attempt]
    plan = planned(
        needs(r, {"orders": 3}),
        {s.topic: (s.delay, 0.0) for s in retries},
        [],
        None,
        {s.topic: (s.attempt, s.last_attempt) for s in retries},
    )
    by_name = {p.need.name: p for p in plan}
    assert by_name["orders_retry_2"].to_json()["first_attempt"] == 2
    assert by_name["orders_retry_2"].to_json()["last_attempt"] == 11
    assert by_name["orders"].to_json()["first_attempt"] is None
    assert shared_tier_notes(plan) == [
        "orders_retry_2: attempts 2-11 share this topic, 2d apart "
        "(equal delays in a row are one tier; each record carries its attempt in kretry-attempt)"
    ]


class Forwarder:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, out: Outgoing, done: Any) -> None:
        self.sent.append(out)


def fail_at(delays: Any, stage_topic: str, carried: bytes | None) -> tuple[list[int], Outgoing]:
    """A record on ``stage_topic`` carrying ``kretry-attempt: carried``, through that stage's always-failing handler:
    the attempts the handler saw, and what the stage forwarded."""
    seen: list[int] = []

    def handle(msg: Message) -> None:
        seen.append(msg.attempt)
        raise RuntimeError("down")

    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("orders", delays=delays)(handle)
    (spec,) = [s for s in retrier.stages() if s.topic == stage_topic]
    stage = offline_stage(spec)
    headers = [] if carried is None else [(hdr.ATTEMPT, carried), (hdr.GROUP, b"svc")]
    record = kt.Record(stage_topic, b"v", b"k", headers, partition=2, offset=40, timestamp=0)
    forwarder = Forwarder()
    stage._settle(forwarder, record, stage._dispatch.call(record))  # type: ignore[arg-type]
    (out,) = forwarder.sent
    return seen, out


def attempt_header(out: Outgoing) -> bytes:
    return dict(out.headers)[hdr.ATTEMPT]


@pytest.mark.parametrize(
    ("carried", "seen", "to", "forwarded"),
    [
        (b"3", 3, "orders_retry_3", b"4"),  # the tier's first attempt: back to its own topic
        (b"57", 57, "orders_retry_3", b"58"),
        (b"101", 101, "orders_retry_3", b"102"),  # the next attempt is the tier's last: still here
        (b"102", 102, "dlq", b"103"),  # the last attempt of the last tier: the DLQ
        (None, 3, "orders_retry_3", b"4"),  # no header: the tier's first attempt
        (b"x", 3, "orders_retry_3", b"4"),
    ],
)
def test_a_shared_tier_forwards_to_itself_then_the_dlq(
    carried: bytes | None, seen: int, to: str, forwarded: bytes
) -> None:
    attempts, out = fail_at(TAIL, "orders_retry_3", carried)
    assert attempts == [seen]
    assert (out.topic, attempt_header(out), out.partition) == (to, forwarded, 2)


def test_a_shared_tier_hands_over_to_the_next_tier() -> None:
    delays = [1.0, 5.0, 5.0, 9.0]  # orders_retry_2 handles attempts 2 and 3
    assert fail_at(delays, "orders_retry_2", b"2")[1].topic == "orders_retry_2"
    attempts, out = fail_at(delays, "orders_retry_2", b"3")
    assert attempts == [3]
    assert (out.topic, attempt_header(out)) == ("orders_retry_3", b"4")
    assert dict(out.headers)[hdr.DUE_AT] is not None


def test_a_tier_of_one_attempt_ignores_the_header_as_before() -> None:
    attempts, out = fail_at([1.0, 2.0, 4.0], "orders_retry_2", b"9")
    assert attempts == [2]
    assert (out.topic, attempt_header(out)) == ("orders_retry_3", b"3")


def test_run_ladder_loops_on_the_shared_topic() -> None:
    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("orders", delays=["1s"] + ["1m"] * 4)(lambda msg: 1 / 0)
    ladder = kt.run_ladder(retrier, "orders", value=b"v")
    assert [(t.topic, t.attempt) for t in ladder.tries] == [
        ("orders", 0),
        ("orders_retry_1", 1),
        ("orders_retry_2", 2),
        ("orders_retry_2", 3),
        ("orders_retry_2", 4),
        ("orders_retry_2", 5),
    ]
    assert (ladder.fate, ladder.topic, ladder.waited) == ("dead_lettered", "dlq", 241.0)
    assert kt.outcome(retrier, "orders", RuntimeError(), attempt=3).topic == "orders_retry_2"
    assert kt.message(retrier, "orders", value=b"v", attempt=4).topic == "orders_retry_2"


def test_check_notes_retry_topics_no_stage_reads_any_more() -> None:
    r = retrier_with(["1s", "1m", "1m"])  # orders_retry_3 of the old schedule, one topic per attempt, is left over
    r.handler("payments", delays=["1s"], retry_topic="{topic}.retry.{attempt}")(lambda msg: None)
    existing = ["orders", "orders_retry_1", "orders_retry_2", "orders_retry_3", "payments.retry.2", "other_retry_9"]
    assert stranded_retry_topics(r.handlers, existing) == [
        "orders_retry_3: no stage reads it, orders has 2 retry tiers; records still on it are not retried "
        "(let the old schedule drain it first; delete it once it is empty)",
        "payments.retry.2: no stage reads it, payments has 1 retry tier; records still on it are not retried "
        "(let the old schedule drain it first; delete it once it is empty)",
    ]
    assert stranded_retry_topics(r.handlers, ["orders_retry_1", "orders_retry_2", "payments.retry.1"]) == []


def test_an_async_handler_on_a_shared_tier_sees_each_records_own_attempt() -> None:
    seen: list[tuple[bytes | None, int]] = []

    async def handle(msg: Message) -> None:
        seen.append((msg.raw_key, msg.attempt))

    retrier = Retrier("svc", dlq_topic="dlq")
    retrier.handler("orders", delays=[1.0] + [5.0] * 10)(handle)
    spec = retrier.stages()[-1]
    stage = offline_stage(spec)
    records = [
        kt.Record(spec.topic, b"v", key, [(hdr.ATTEMPT, carried)], offset=i)
        for i, (key, carried) in enumerate([(b"a", b"4"), (b"b", b"11"), (b"c", b"2")])
    ]
    try:
        assert stage._dispatch.call_batch(records) == [None, None, None]
    finally:
        stage._dispatch.close()  # the batch's event loop
    assert sorted(seen) == [(b"a", 4), (b"b", 11), (b"c", 2)]
