"""Instance slots: unique among live workers of a group on one host, the same again once a worker is gone."""

from __future__ import annotations

from pathlib import Path

from kretry.instance import claim, transactional_id


def test_live_workers_get_different_slots_and_a_freed_slot_is_taken_again(tmp_path: Path) -> None:
    first = claim("svc", None, tmp_path)
    second = claim("svc", None, tmp_path)
    other_group = claim("other", None, tmp_path)
    assert first.name.endswith("-0")
    assert second.name.endswith("-1")
    assert other_group.name.endswith("-0")
    first.release()
    again = claim("svc", None, tmp_path)
    assert again.name == first.name  # a restarted worker fences its predecessor's transactions
    for held in (second, other_group, again):
        held.release()


def test_a_given_instance_id_is_taken_as_it_is(tmp_path: Path) -> None:
    assert claim("svc", "orders-7", tmp_path).name == "orders-7"
    assert not list(tmp_path.iterdir())


def test_transactional_id_names_group_stage_and_instance() -> None:
    assert transactional_id("svc", "orders_retry_1", "host-0") == "kretry.svc.orders_retry_1.host-0"
