from __future__ import annotations

from kretry import admin

NOTE = "each service handles only its own records, but they share the topic's retention and partitions"


def test_a_retry_topic_another_service_reads_is_noted_once_per_service() -> None:
    groups = [
        "svc",  # this service's main stage
        "svc.orders_retry_1",  # and its own retry stage
        "svcB.orders_retry_1",
        "team.svcC.orders_retry_1",  # a group id may hold dots
        "svcB.orders_retry_10",  # another topic that merely starts alike
        "orders_retry_1",  # no service prefix: not a retry stage of anyone's
        ".orders_retry_1",
    ]
    assert admin.shared_retry_topics("svc", ["orders_retry_1", "orders_retry_2"], groups) == [
        f"orders_retry_1: also consumed by group svcB (svcB.orders_retry_1); {NOTE}",
        f"orders_retry_1: also consumed by group team.svcC (team.svcC.orders_retry_1); {NOTE}",
    ]
    assert admin.shared_retry_topics("svc", ["orders_retry_1"], ["svc.orders_retry_1"]) == []
