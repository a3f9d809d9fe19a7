from __future__ import annotations

from kretry.offsets import PartitionOffsets


def test_fresh_partition_has_nothing_to_store() -> None:
    p = PartitionOffsets()
    assert (p.next, p.dirty, p.in_flight) == (None, False, 0)


def test_done_now_without_pending_moves_next_at_once() -> None:
    p = PartitionOffsets()
    p.done_now(10)
    p.done_now(11)
    assert (p.next, p.dirty, p.in_flight) == (12, True, 0)


def test_next_never_passes_a_pending_offset() -> None:
    p = PartitionOffsets()
    p.done_now(0)
    p.begin(1)
    p.done_now(2)
    p.begin(3)
    p.done_now(4)
    assert (p.next, p.in_flight) == (1, 2)
    p.finish(3)
    assert (p.next, p.in_flight) == (1, 1)
    p.finish(1)
    assert (p.next, p.in_flight) == (5, 0)


def test_out_of_order_finish_releases_the_longest_done_prefix() -> None:
    p = PartitionOffsets()
    for offset in (100, 101, 102, 103):
        p.begin(offset)
    p.finish(102)
    assert (p.next, p.dirty, p.in_flight) == (None, False, 3)
    p.finish(100)
    assert (p.next, p.dirty, p.in_flight) == (101, True, 2)
    p.dirty = False  # stored
    p.finish(101)
    assert (p.next, p.dirty, p.in_flight) == (103, True, 1)
    p.finish(103)
    assert (p.next, p.in_flight) == (104, 0)


def test_gaps_between_offsets_are_fine() -> None:
    p = PartitionOffsets()  # compacted topics and transaction markers leave gaps
    p.begin(5)
    p.done_now(9)
    p.finish(5)
    assert p.next == 10


def test_dirty_stays_false_when_next_does_not_move() -> None:
    p = PartitionOffsets()
    p.begin(1)
    p.begin(2)
    p.finish(2)
    assert not p.dirty


def test_a_held_record_keeps_its_place_until_its_outcome_comes() -> None:
    p = PartitionOffsets()
    p.done_now(0)
    p.hold(1)  # not due yet: handled later
    p.hold(2)
    p.hold(1)  # fetched again while held: still one place
    p.done_now(3)
    assert (p.next, p.holds(1), p.in_flight) == (1, True, 2)
    p.done_now(2)  # due first, handled: nothing past 1 is stored yet
    assert (p.next, p.in_flight) == (1, 1)
    p.begin(1)  # failed: its forward pending in the place it was held in
    assert (p.next, p.holds(1), p.in_flight) == (1, False, 1)
    p.finish(1)
    assert (p.next, p.in_flight) == (4, 0)
