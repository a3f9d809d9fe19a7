"""Pure: the gateway's topics and consumer groups, and the timing wheel that holds an event until it is due.

``<prefix>.configs``   compacted: one record per identifier, its configuration (a tombstone once deleted)
``<prefix>.requests``  posts taken by an instance that does not own the event's partition, and failed
                       deliveries, keyed by the event: the partition's owner counts them one at a time, so that a
                       count is exact across instances (a post to the owner is decided there, kretry.gateway.direct)
``<prefix>.counts``    compacted, partitioned as requests: the owners' counts, read back by a new owner
``<prefix>.replies``   the owners' answers to the instance that asked
``<prefix>.wait-<d>``  the wheel: an event waits ``d`` here, then moves on to the largest bucket that fits what
                       is left, until less than the smallest bucket is left
``<prefix>.due``       events due within MIN_BUCKET: held in memory until due to the millisecond, then delivered

A bucket's delay is fixed, so its records leave in the order they came: a bucket never holds one event up behind
another, and a thousand identifiers with a thousand schedules share the same topics. Delays double from bucket to
bucket, so an event visits each bucket at most once: 18 hops at most for 36 hours.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from kretry.gateway.events import Scheduled, ms_ceil

# Seconds: 1, 2, 4, ... 2**17 (about 36 h).
BUCKETS: tuple[int, ...] = tuple(2**k for k in range(18))
MIN_BUCKET = BUCKETS[0]
# An event must reach the due topic before it is due: each hop takes a few milliseconds, so a bucket is chosen
# only when the event would still have this much left after it.
HOP_MARGIN = 0.05


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def configs(self) -> str:
        return f"{self.prefix}.configs"

    @property
    def requests(self) -> str:
        return f"{self.prefix}.requests"

    @property
    def counts(self) -> str:
        return f"{self.prefix}.counts"

    @property
    def replies(self) -> str:
        return f"{self.prefix}.replies"

    @property
    def due(self) -> str:
        return f"{self.prefix}.due"

    def bucket(self, seconds: int) -> str:
        return f"{self.prefix}.wait-{seconds}s"

    @property
    def buckets(self) -> list[str]:
        return [self.bucket(d) for d in BUCKETS]

    def bucket_delay(self, topic: str) -> int | None:
        """The delay of a bucket topic, or None when ``topic`` is not one."""
        head = f"{self.prefix}.wait-"
        if not topic.startswith(head) or not topic.endswith("s"):
            return None
        digits = topic[len(head) : -1]
        return int(digits) if digits.isdigit() and int(digits) in BUCKETS else None

    def group(self, role: str) -> str:
        return f"{self.prefix}.{role}"


def bucket_for(remaining: float) -> int | None:
    """The bucket an event with ``remaining`` seconds to wait goes to next, or None: the due topic."""
    chosen = None
    for delay in BUCKETS:
        if delay + HOP_MARGIN > remaining:
            break
        chosen = delay
    return chosen


def next_topic(names: Names, remaining: float) -> str:
    delay = bucket_for(remaining)
    return names.due if delay is None else names.bucket(delay)


def request_partition(key: bytes, partitions: int) -> int:
    """The partition of ``<prefix>.requests`` (and of ``.counts``) an event's records go to: chosen here, not by the
    producer's partitioner (a setting may change that), so that an instance knows whether it owns an event."""
    return zlib.crc32(key) % partitions


def route(names: Names, event: Scheduled, now: float) -> tuple[str, Scheduled]:
    """Where a scheduled event goes next, with the time it leaves a bucket."""
    delay = bucket_for(event.due_ms / 1000 - now)
    if delay is None:
        return names.due, Scheduled(event.identifier, event.attempt, event.due_ms, event.pending)
    leave = ms_ceil(now + delay)
    return names.bucket(delay), Scheduled(event.identifier, event.attempt, event.due_ms, event.pending, leave)
