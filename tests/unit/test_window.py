"""The due-time window, pure: which records it holds, in which order it hands them out, and its bounds."""

from __future__ import annotations

import math

from kretry.stage.window import FOREVER, RECORD_OVERHEAD, Window, due_ms, is_due, record_cost


def test_due_time_is_rounded_up_so_no_record_is_handled_early() -> None:
    # Truncating (int) wrote 1001000: the record was handled up to a millisecond before its due time.
    assert due_ms(1000.0004, 1.0) == 1001001
    assert due_ms(1000.9999, 0.3) == 1001300
    assert due_ms(1000.0, 0.25) == 1000250  # a whole millisecond stays as it is
    for now in (1_764_000_000.0001, 1_764_000_000.1234567, 1_764_000_000.999999):
        for delay in (0.3, 1.0, 0.0301):
            assert due_ms(now, delay) >= (now + delay) * 1000


def test_a_record_is_due_at_its_millisecond_and_not_before() -> None:
    assert not is_due(1001001, 1001.0009)
    assert is_due(1001001, 1001.001)
    assert is_due(1001001, 1001.5)


def test_records_are_handed_out_by_due_time_whatever_their_place() -> None:
    window: Window[str] = Window()
    assert window.hold(0, 7, 11.0, 10, "7: 1 s")
    assert window.hold(0, 8, 10.3, 10, "8: 0.3 s")
    assert window.hold(1, 2, 10.3, 10, "p1 2: 0.3 s")
    assert window.next_due() == 10.3
    assert window.due(10.29) == []
    assert window.due(10.3) == ["8: 0.3 s", "p1 2: 0.3 s"]
    assert (window.count(0), window.size(0), window.next_due()) == (1, 10, 11.0)
    assert window.due(12.0) == ["7: 1 s"]
    assert (window.count(), window.next_due()) == (0, None)


def test_holding_a_held_record_again_changes_nothing() -> None:
    window: Window[str] = Window(max_records=1)
    assert window.hold(0, 7, 11.0, 10, "7")
    assert window.hold(0, 7, 11.0, 10, "7")
    assert (window.count(0), window.size(0)) == (1, 10)
    assert window.due(11.0) == ["7"]


def test_a_full_window_refuses_by_count_and_by_bytes_per_partition() -> None:
    window: Window[int] = Window(max_records=2, max_bytes=100)
    assert window.hold(0, 1, 5.0, 40, 1)
    assert window.hold(0, 2, 5.0, 40, 2)
    assert not window.hold(0, 3, 1.0, 1, 3)  # two records already
    assert window.hold(1, 1, 5.0, 90, 1)  # another partition has its own bounds
    assert not window.hold(1, 2, 5.0, 20, 2)  # 110 bytes
    assert window.hold(2, 1, 5.0, 500, 1)  # larger than max_bytes alone: an empty window takes it
    assert window.hold(0, 3, 1.0, 1, 3, force=True)  # one handed out, held again
    assert window.due(5.0) == [3, 1, 2, 1, 1]


def test_a_window_of_no_records_holds_nothing() -> None:
    assert not Window[int](max_records=0).hold(0, 1, 5.0, 1, 1)


def test_a_dropped_partition_hands_out_nothing_more() -> None:
    window: Window[str] = Window()
    window.hold(0, 7, 11.0, 10, "p0")
    window.hold(1, 7, 12.0, 10, "p1")
    assert window.drop(0) == 1
    assert window.next_due() == 12.0
    assert window.due(20.0) == ["p1"]
    window.hold(0, 7, 11.0, 10, "p0 again")  # assigned again, fetched again
    assert window.due(20.0) == ["p0 again"]


def test_records_held_forever_are_due_once_released() -> None:
    window: Window[str] = Window()
    window.hold(0, 7, FOREVER, 10, "held")
    window.hold(0, 8, 15.0, 10, "later")
    assert window.due(1e12) == ["later"]
    assert window.next_due() == math.inf
    assert window.release(20.0) == 1
    assert window.due(20.0) == ["held"]
    assert window.next_due() is None


def test_a_window_has_room_again_once_half_empty() -> None:
    window: Window[int] = Window(max_records=4, max_bytes=100)
    for offset in range(4):
        window.hold(0, offset, float(offset), 10, offset)
    assert not window.room(0)
    window.due(0.0)
    assert not window.room(0)  # three of four
    window.due(1.0)
    assert window.room(0)
    window.hold(1, 0, 5.0, 60, 0)
    assert not window.room(1)  # 60 of 100 bytes
    assert window.room(2)
    assert not Window[int](max_records=0).room(0)


def test_a_stage_holds_at_most_its_total_bytes_whatever_its_partitions() -> None:
    window: Window[int] = Window(max_records=10, max_bytes=100, max_total_bytes=150)
    assert window.hold(0, 1, 5.0, 80, 1)
    assert not window.hold(1, 1, 5.0, 80, 1)  # 160 of 150 bytes, though partition 1 holds nothing
    assert (window.total_bytes, window.room(1)) == (80, False)
    window.due(5.0)
    assert (window.total_bytes, window.room(1)) == (0, True)
    assert window.hold(1, 1, 5.0, 80, 1)
    assert window.drop(1) == 1
    assert window.total_bytes == 0


class Msg:
    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"x" * 100

    def headers(self) -> list[tuple[str, bytes]]:
        return [("kretry-due-at", b"1764000000000")]


def test_a_record_costs_its_bytes_and_the_message_around_them() -> None:
    assert record_cost(Msg()) == RECORD_OVERHEAD + 1 + 100 + 13 + 13


def test_dropping_records_held_forever_leaves_nothing_behind() -> None:
    window: Window[int] = Window()
    for round_ in range(100):  # a partition assigned and revoked again and again while the flood guard holds
        for offset in range(10):
            window.hold(round_ % 3, offset, FOREVER, 1, offset)
        window.drop(round_ % 3)
    assert (window.records, window.total_bytes) == (0, 0)
    assert len(window._heap) <= 64 + 10
    window.hold(0, 1, 5.0, 1, 1)
    assert (window.records, window.next_due(), window.due(5.0)) == (1, 5.0, [1])
    assert window.records == 0
