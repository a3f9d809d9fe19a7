"""Pure parts of `kretry topics` and the HTTP API: the plan, the checks, the replay request."""

from __future__ import annotations

from typing import Any

import pytest

from kretry import Retrier, admin
from kretry.admin import DAY_MS, DEFAULT_MAX_MESSAGE_BYTES, HEADROOM, TopicNeed
from kretry.web.deadset import BadRequest, replay_args


def retrier() -> Retrier:
    r = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", dlq_topic="dead")
    r.handler("orders", delays=["10s", "3d"])(lambda msg: None)
    r.handler("audit", delays=[])(lambda msg: None)
    return r


def test_needs_plans_width_retention_and_cleanup() -> None:
    needs = {n.name: n for n in admin.needs(retrier(), {"orders": 4, "audit": 6})}
    assert list(needs) == [
        "orders",
        "orders_retry_1",
        "orders_retry_2",
        "audit",
        "dead",
        "dead.replayed",
        "svc.control",
    ]
    assert needs["orders"] == TopicNeed("orders", "main", 4, "orders", None, None, None)
    room = DEFAULT_MAX_MESSAGE_BYTES + HEADROOM
    assert needs["orders_retry_1"] == TopicNeed(
        "orders_retry_1", "retry", 4, "orders", 7 * DAY_MS, DAY_MS, "delete", room
    )
    assert needs["orders_retry_2"].retention_ms == 7 * DAY_MS
    assert needs["orders_retry_2"].min_retention_ms == 6 * DAY_MS
    assert needs["dead"] == TopicNeed("dead", "dlq", 6, "", 14 * DAY_MS, 7 * DAY_MS, "delete", room)
    assert needs["dead.replayed"].cleanup == "compact"
    # Operators' tier commands: kept twice the longest delay (3d), read back that far by a starting worker.
    assert needs["svc.control"] == TopicNeed("svc.control", "control", 1, "", 6 * DAY_MS, 6 * DAY_MS, "delete")


def test_retry_topics_and_the_dlq_take_the_largest_record_of_their_main_topic_with_headroom() -> None:
    needs = {n.name: n for n in admin.needs(retrier(), {"orders": 4, "audit": 6}, {"orders": 5_000_000})}
    assert needs["orders_retry_1"].max_message_bytes == 5_000_000 + HEADROOM
    assert needs["orders_retry_1"].topic_config()["max.message.bytes"] == str(5_000_000 + HEADROOM)
    assert needs["dead"].max_message_bytes == 5_000_000 + HEADROOM  # the largest main topic's


def test_a_long_delay_gets_twice_its_retention() -> None:
    r = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", dlq_topic="dead")
    r.handler("slow", delays=["5d"])(lambda msg: None)
    need = next(n for n in admin.needs(r, {"slow": 1}) if n.role == "retry")
    assert (need.retention_ms, need.min_retention_ms) == (10 * DAY_MS, 10 * DAY_MS)


RETRY = TopicNeed("t_retry_1", "retry", 3, "t", 7 * DAY_MS, DAY_MS, "delete", 1_100_000)
LEDGER = TopicNeed("dead.replayed", "ledger", 1, "", None, None, "compact")


@pytest.mark.parametrize(
    ("need", "partitions", "configs", "problems"),
    [
        (RETRY, 3, {"retention.ms": str(DAY_MS), "cleanup.policy": "delete", "max.message.bytes": "1100000"}, []),
        (
            RETRY,
            3,
            {"max.message.bytes": "1048588"},
            [
                "t_retry_1: max.message.bytes=1048588, below the 1100000 a record of its main topic needs with "
                "kretry's headers; such records would reach the DLQ as stubs"
            ],
        ),
        (RETRY, 5, {"retention.ms": "-1", "max.message.bytes": "2000000"}, []),
        (RETRY, None, {}, ["t_retry_1: missing (retry topic; `kretry topics create` creates it)"]),
        (RETRY, 2, {"max.message.bytes": "1100000"}, ["t_retry_1: 2 partitions, fewer than the 3 of its main topic"]),
        (
            RETRY,
            3,
            {"retention.ms": "3600000", "max.message.bytes": "1100000"},
            ["t_retry_1: retention.ms=3600000 (1h), below the 1d a retry topic needs"],
        ),
        (
            RETRY,
            3,
            {"cleanup.policy": "compact,delete", "max.message.bytes": "1100000"},
            ["t_retry_1: cleanup.policy=compact,delete; compaction would drop records that share a key"],
        ),
        (LEDGER, None, {}, []),
        (LEDGER, 1, {"cleanup.policy": "delete"}, ["dead.replayed: cleanup.policy=delete, should be compact"]),
    ],
)
def test_problems_of(need: TopicNeed, partitions: int | None, configs: dict[str, str], problems: list[str]) -> None:
    assert admin.problems_of(need, partitions, configs) == problems


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "-"), (-1, "forever"), (DAY_MS, "1d"), (36 * 3_600_000, "36h"), (90_000, "90s"), (1500, "1500ms")],
)
def test_human_ms(ms: int | None, text: str) -> None:
    assert admin.human_ms(ms) == text


def test_replay_args() -> None:
    assert replay_args({"count": 5, "topic": "orders"}) == {
        "count": 5,
        "origin_topic": "orders",
        "max_replays": 3,
        "dry_run": False,
    }
    assert replay_args({"offsets": ["0:1", "2:3"], "max_replays": 1, "dry_run": True}) == {
        "count": None,
        "offsets": [(0, 1), (2, 3)],
        "origin_topic": None,
        "max_replays": 1,
        "dry_run": True,
    }
    assert replay_args({"count": "10"})["count"] == 10  # Ziggurat's clients send the count as a string


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({}, 'give either "count" or "offsets"'),
        ({"count": 1, "offsets": ["0:0"]}, 'give either "count" or "offsets"'),
        ({"count": 0}, "count must be between 1 and 1000, got 0"),
        ({"count": True}, "count must be an integer, got True"),
        ({"count": "many"}, "count must be an integer, got 'many'"),
        ({"offsets": []}, '"offsets" must be a non-empty list'),
        ({"offsets": ["0-1"]}, "expected PARTITION:OFFSET"),
        ({"count": 1, "topic": 3}, '"topic" must be a string'),
        ({"count": 1, "max_replays": -1}, '"max_replays" must be a non-negative integer'),
        ({"count": 1, "dry_run": "yes"}, '"dry_run" must be true or false'),
        ({"count": 1, "topic_entity": "x"}, "unknown field topic_entity"),
    ],
)
def test_replay_args_refuses(body: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        replay_args(body)
