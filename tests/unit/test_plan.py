"""The rows of `kretry topics plan`, a pure function of the topics needed, the tiers' delays and what is missing."""

from __future__ import annotations

from kretry import Retrier, exponential
from kretry.admin import needs, planned


def test_a_missing_main_topic_leaves_its_own_widths_and_the_dlqs_unknown() -> None:
    r = Retrier(group_id="plan", dlq_topic="dlq")
    r.handler("there", delays=["5s"])(lambda msg: None)
    r.handler("absent", delays=exponential("1s", retries=2, jitter=0.1))(lambda msg: None)
    delays = {s.topic: (s.delay, s.handler.policy.jitter) for s in r.stages() if s.attempt}
    rows = planned(needs(r, {"there": 3, "absent": 1}), delays, ["absent"], None)
    assert [(p.need.name, p.partitions, p.delay) for p in rows] == [
        ("there", 3, None),
        ("there_retry_1", 3, "5s"),
        ("absent", None, None),
        ("absent_retry_1", None, "1s±10%"),
        ("absent_retry_2", None, "2s±10%"),
        ("dlq", None, None),
        ("dlq.replayed", 1, None),
        ("plan.control", 1, None),  # one partition whatever the main topics' widths
    ]
    assert rows[1].to_json()["delay_s"] == 5.0


def test_partitions_stands_in_for_a_missing_main_topic() -> None:
    r = Retrier(group_id="plan", dlq_topic="dlq")
    r.handler("absent", delays=["200ms"])(lambda msg: None)
    rows = planned(needs(r, {"absent": 4}), {"absent_retry_1": (0.2, 0.0)}, ["absent"], 4)
    assert [(p.need.name, p.partitions, p.delay) for p in rows][:3] == [
        ("absent", 4, None),
        ("absent_retry_1", 4, "200ms"),
        ("dlq", 4, None),
    ]
