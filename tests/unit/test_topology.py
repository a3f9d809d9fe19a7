from __future__ import annotations

import pytest

from kretry.errors import ConfigError
from kretry.topology import (
    DEFAULT_RETRY_PATTERN,
    MAX_TOPIC_LENGTH,
    TopicPlan,
    check_collisions,
    parse_retry_topic,
    plan_topics,
    retry_topic,
    stage_group,
    stage_topics,
    validate_pattern,
    validate_topic_name,
)

DOTTED = "{topic}.retry.{attempt}"


@pytest.mark.parametrize(
    ("topic", "attempt", "pattern", "name"),
    [
        ("orders", 1, DEFAULT_RETRY_PATTERN, "orders_retry_1"),
        ("orders", 2, DEFAULT_RETRY_PATTERN, "orders_retry_2"),
        ("orders", 10, DEFAULT_RETRY_PATTERN, "orders_retry_10"),
        ("orders_retry_1", 2, DEFAULT_RETRY_PATTERN, "orders_retry_1_retry_2"),
        ("a.b-c_9", 3, DEFAULT_RETRY_PATTERN, "a.b-c_9_retry_3"),
        ("orders", 1, DOTTED, "orders.retry.1"),
        ("orders.retry.2", 12, DOTTED, "orders.retry.2.retry.12"),
        ("orders", 4, "retry-{attempt}-{topic}", "retry-4-orders"),
    ],
)
def test_retry_topic_round_trips(topic: str, attempt: int, pattern: str, name: str) -> None:
    assert retry_topic(topic, attempt, pattern) == name
    assert parse_retry_topic(name, pattern) == (topic, attempt)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("orders", DEFAULT_RETRY_PATTERN),
        ("orders_retry_0", DEFAULT_RETRY_PATTERN),
        ("orders_retry_01", DEFAULT_RETRY_PATTERN),
        ("orders_retry_", DEFAULT_RETRY_PATTERN),
        ("orders_retry_1x", DEFAULT_RETRY_PATTERN),
        ("_retry_1", DEFAULT_RETRY_PATTERN),
        ("orders_retry_1", DOTTED),
        ("orders.retry.1", DEFAULT_RETRY_PATTERN),
        ("ordersXretryX1", DOTTED),  # '.' in the pattern is literal, not a regex wildcard
    ],
)
def test_parse_retry_topic_rejects(name: str, pattern: str) -> None:
    assert parse_retry_topic(name, pattern) is None


@pytest.mark.parametrize("attempt", [0, -1])
def test_retry_topic_counts_attempts_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="count from 1"):
        retry_topic("orders", attempt)


@pytest.mark.parametrize("pattern", ["{topic}{attempt}", "{attempt}{topic}"])
def test_every_accepted_pattern_round_trips(pattern: str) -> None:
    try:
        validate_pattern(pattern)
    except ConfigError:
        return  # refusing the pattern is a fix too
    for topic, attempt in [("orders", 12), ("2fa", 1)]:
        assert parse_retry_topic(retry_topic(topic, attempt, pattern), pattern) == (topic, attempt)


@pytest.mark.parametrize("name", ["a", "orders", "Orders.v2-x_y", "0", "...", "a" * MAX_TOPIC_LENGTH])
def test_validate_topic_name_accepts(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a" * (MAX_TOPIC_LENGTH + 1), "or ders", "orders/x", "ordérs", "a:b", "\norders", None, 5]
)
def test_validate_topic_name_rejects(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^dlq_topic: "):
        validate_topic_name(name, what="dlq_topic")


def test_validate_topic_name_rejects_a_trailing_newline() -> None:
    with pytest.raises(ConfigError):
        validate_topic_name("orders\n")


@pytest.mark.parametrize("pattern", [DEFAULT_RETRY_PATTERN, DOTTED, "retry-{attempt}-{topic}"])
def test_validate_pattern_accepts(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    "pattern",
    [
        "{topic}_retry",
        "retry_{attempt}",
        "{topic}_{topic}_{attempt}",
        "{topic}_{attempt}_{attempt}",
        "{topic}_{attempt}_{group}",
        "{topic}_{}_{attempt}",
        "{topic} retry {attempt}",
        "{topic}/{attempt}",
    ],
)
def test_validate_pattern_rejects(pattern: str) -> None:
    with pytest.raises(ConfigError):
        validate_pattern(pattern)


def test_stage_topics() -> None:
    assert stage_topics("orders", 0) == ["orders"]
    assert stage_topics("orders", 2) == ["orders", "orders_retry_1", "orders_retry_2"]
    assert stage_topics("orders", 1, DOTTED) == ["orders", "orders.retry.1"]


def test_stage_group() -> None:
    assert stage_group("svc", "orders", 0) == "svc"
    assert stage_group("svc", "orders_retry_2", 2) == "svc.orders_retry_2"


def test_check_collisions_accepts_distinct_topics() -> None:
    patterns = {"orders": DEFAULT_RETRY_PATTERN, "payments": DOTTED}
    check_collisions({"orders": 3, "payments": 2}, patterns, "dead_letter_queue")
    check_collisions({"orders": 3}, {"orders": DEFAULT_RETRY_PATTERN}, None)


@pytest.mark.parametrize(
    ("retries", "dlq", "message"),
    [
        ({"orders": 2, "orders_retry_2": 0}, None, "'orders_retry_2' would be both retry 2 of 'orders' and handler"),
        ({"orders_retry_1": 0, "orders": 1}, None, "'orders_retry_1' would be both handler 'orders_retry_1' and retry"),
        ({"orders": 1}, "orders", "'orders' would be both the DLQ and handler 'orders'"),
        ({"orders": 1}, "orders_retry_1", "'orders_retry_1' would be both the DLQ and retry 1 of 'orders'"),
    ],
)
def test_check_collisions_refuses_a_topic_with_two_roles(
    retries: dict[str, int], dlq: str | None, message: str
) -> None:
    patterns = dict.fromkeys(retries, DEFAULT_RETRY_PATTERN)
    with pytest.raises(ConfigError, match=message):
        check_collisions(retries, patterns, dlq)


def test_check_collisions_refuses_a_retry_topic_too_long_for_kafka() -> None:
    topic = "a" * MAX_TOPIC_LENGTH
    with pytest.raises(ConfigError, match=r"^retry 1 of "):
        check_collisions({topic: 1}, {topic: DEFAULT_RETRY_PATTERN}, None)


def test_plan_topics() -> None:
    plans = plan_topics(
        {"orders": 3, "payments": 12},
        {"orders": 2, "payments": 0},
        {"orders": DEFAULT_RETRY_PATTERN, "payments": DEFAULT_RETRY_PATTERN},
        "dlq",
    )
    assert plans == [
        TopicPlan("orders", 3, "main", "orders"),
        TopicPlan("orders_retry_1", 3, "retry", "orders"),
        TopicPlan("orders_retry_2", 3, "retry", "orders"),
        TopicPlan("payments", 12, "main", "payments"),
        TopicPlan("dlq", 12, "dlq", ""),
    ]


def test_plan_topics_without_dlq() -> None:
    plans = plan_topics({"orders": 2}, {"orders": 1}, {"orders": DOTTED}, None)
    assert [(p.name, p.role) for p in plans] == [("orders", "main"), ("orders.retry.1", "retry")]
