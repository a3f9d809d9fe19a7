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


def test_a_batch_of_successes_is_told_once_with_its_highest_offset() -> None:
    p = PartitionOffsets()
    p.done_through(7)  # records up to 7, all handled
    assert (p.next, p.dirty, p.taken) == (8, True, 7)
    p.dirty = False  # stored
    p.done_through(5)  # an older batch's highest: nothing moves back
    assert (p.next, p.dirty) == (8, False)


def test_a_batch_of_successes_never_passes_a_pending_record() -> None:
    p = PartitionOffsets()
    p.done_through(1)  # 0 and 1 succeeded
    p.begin(2)  # 2 failed: its forward is not acknowledged yet
    p.done_through(4)  # 3 and 4 succeeded
    assert (p.next, p.taken, p.in_flight) == (2, 4, 1)
    p.finish(2)
    assert (p.next, p.in_flight) == (5, 0)


def test_successes_between_pending_records_are_stored_once_those_finish_in_any_order() -> None:
    p = PartitionOffsets()
    p.begin(10)
    p.begin(12)  # 11 succeeded, 13 too (told with the batch's highest, 13)
    p.done_through(13)
    p.finish(12)
    assert (p.next, p.dirty, p.in_flight) == (None, False, 1)  # 10 is still in flight
    p.finish(10)
    assert (p.next, p.dirty, p.in_flight) == (14, True, 0)


def test_a_held_record_keeps_the_batch_of_successes_behind_it_unstored() -> None:
    p = PartitionOffsets()
    p.hold(3)  # not due: in the window
    p.done_through(6)  # 4..6 due and handled
    assert p.next is None
    p.done_now(3)  # due at last, handled
    assert (p.next, p.in_flight) == (7, 0)
