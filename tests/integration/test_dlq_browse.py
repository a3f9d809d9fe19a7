"""kretry.dlq.newest and find on the real broker: newest first, page after page, nothing missed or shown twice;
the time range found through the broker's timestamp index; a read budget that cuts a page short, never a scan."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer

from kretry import dlq
from kretry.console.tally import Tally
from tests.integration.test_dlq import dead, settings_for

NewTopic = Callable[..., str]
T0 = 1_700_000_000_000


def fill_timed(bootstrap: str, dlq_topic: str, origin: str, count: int, partitions: int) -> None:
    """``count`` dead records, record i dead-lettered at T0 + i seconds, spread round the partitions."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        error = "ValueError: bad" if i % 5 == 0 else "RuntimeError: boom"
        producer.produce(
            dlq_topic,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            headers=dead(origin, i, error=error),
            partition=i % partitions,
            timestamp=T0 + i * 1000,
        )
    assert producer.flush(30) == 0


def keys(records: list[dlq.DeadRecord]) -> list[str]:
    return [(r.key or b"").decode() for r in records]


def test_pages_newest_first_cover_every_record_once(bootstrap: str, new_topic: NewTopic) -> None:
    origin, dlq_topic = new_topic("orders"), new_topic("dlq", 3)
    fill_timed(bootstrap, dlq_topic, origin, 40, 3)
    settings = settings_for(bootstrap, dlq_topic)
    seen: list[str] = []
    before = None
    while True:
        page = dlq.newest(settings, 7, before=before)
        assert len(page.records) <= 7
        seen += keys(page.records)
        if page.next is None:
            break
        before = page.next
    assert seen == [f"k{i}" for i in reversed(range(40))]

    matching = dlq.newest(settings, 50, error_type="ValueError")
    assert keys(matching.records) == [f"k{i}" for i in reversed(range(0, 40, 5))]
    assert keys(dlq.newest(settings, 5, key="k17").records) == ["k17"]

    # A time range is found by offsets: only the records in it are read.
    window = dlq.newest(settings, 50, since=T0 + 10_000, until=T0 + 20_000)
    assert keys(window.records) == [f"k{i}" for i in reversed(range(10, 20))]
    assert window.scanned == 10

    found = dlq.find(settings, (2, 3))
    assert found is not None
    assert found.key == b"k11"
    assert found.status == dlq.PENDING
    assert dlq.find(settings, (2, 99)) is None


def test_a_page_that_runs_out_of_budget_says_so_and_goes_on(bootstrap: str, new_topic: NewTopic) -> None:
    origin, dlq_topic = new_topic("orders"), new_topic("dlq")
    fill_timed(bootstrap, dlq_topic, origin, 30, 1)
    settings = settings_for(bootstrap, dlq_topic)
    first = dlq.newest(settings, 5, key="k2", budget=10)
    assert first.records == []
    assert first.cut_short
    assert first.scanned == 10
    assert first.next == {0: 20}
    second = dlq.newest(settings, 5, key="k2", budget=10, before=first.next)
    assert keys(second.records) == []
    third = dlq.newest(settings, 5, key="k2", budget=10, before=second.next)
    assert keys(third.records) == ["k2"]
    assert third.next is None


def test_the_consoles_count_catches_up_step_by_step_and_then_with_what_arrives(
    bootstrap: str, new_topic: NewTopic
) -> None:
    origin, dlq_topic = new_topic("orders"), new_topic("dlq", 2)
    fill_timed(bootstrap, dlq_topic, origin, 23, 2)
    tally = Tally(settings_for(bootstrap, dlq_topic), step=5)
    assert tally.counts().counting  # the first look starts the count; the page never waits for it
    tally.wait(60)
    counts = tally.counts()
    assert counts.counted == 23
    assert counts.by_topic == {origin: 23}
    assert counts.by_error == {"RuntimeError": 18, "ValueError": 5}
    tally.wait(60)
    fill_timed(bootstrap, dlq_topic, "payments", 4, 2)
    tally.counts()
    tally.wait(60)
    later = tally.counts()
    assert later.counted == 27
    assert later.by_topic == {origin: 23, "payments": 4}
    assert not later.counting
