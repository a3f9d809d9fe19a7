"""``depth``: how many records the DLQ holds, and how many of them are pending. Cheap enough for a gauge: it reads
the watermarks and the compacted ledger, never the DLQ's records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from kretry.config import Settings
from kretry.dlq._ledger import read_ledger
from kretry.dlq._reader import Reader
from kretry.dlq._records import parse_position


class Depth(NamedTuple):
    total: int  # records the DLQ holds: what retention has not deleted yet
    pending: int  # of those, the ones the ledger marks neither replayed nor discarded


def count_pending(ranges: Mapping[int, tuple[int, int]], marked: Iterable[str]) -> Depth:
    """Pure: ``ranges``: each partition's [low, high) offsets; ``marked``: the ledger's keys. An entry for an offset
    outside what the DLQ holds (deleted by retention, or of a DLQ since re-created shorter) is not subtracted."""
    total = sum(high - low for low, high in ranges.values())
    held = 0
    for key in marked:
        try:
            partition, offset = parse_position(key)
        except ValueError:
            continue
        low, high = ranges.get(partition, (0, 0))
        held += low <= offset < high
    return Depth(total, total - held)


def depth(settings: Settings) -> Depth:
    """The DLQ's depth now. It trusts the ledger's keys without reading the records they name, so after a DLQ is
    deleted and re-created an old entry may hide a new record at the same offset (``peek`` tells them apart)."""
    dlq = Reader(settings)
    try:
        return depth_of(dlq)
    finally:
        dlq.close()


def depth_of(dlq: Reader) -> Depth:
    ranges = {p: dlq.watermarks(dlq.topic, p) for p in dlq.partitions}
    return count_pending(ranges, read_ledger(dlq))
