"""The record a handler sees."""

from __future__ import annotations

from typing import Any

from kretry import headers as hdr

_READ: Any = object()  # "not decoded": read the field from the record as it is


class Message:
    """A record as read from ``topic``, with the producer's headers only (kretry's own are hidden).

    ``attempt`` is 0 on the main topic and n on its n-th retry topic; ``origin_topic`` is the main topic.
    ``value`` is what the handler's ``value_deserializer`` made of the bytes (the bytes themselves without one);
    ``raw_value`` is always the bytes, the thing kretry forwards. ``key`` and ``raw_key`` are the same for the key
    and ``key_deserializer``.

    ``headers`` is ``list[tuple[str, bytes]]``: the producer's headers in the order they came, a name may repeat,
    a header sent without a value reads as ``b""``. ``replays`` is how many times the record was replayed from the
    DLQ (``kretry-replays``, 0 when never). ``origin_partition`` and ``origin_offset`` are where the record first
    failed: on the main topic its own partition and offset, on a retry topic those of the main topic's record.

    kretry's headers are read only when one of these is asked for: the hot path never parses them.
    """

    __slots__ = ("_key", "_raw", "_state", "attempt", "origin_topic", "value")

    def __init__(self, raw: Any, attempt: int, origin_topic: str, value: Any = _READ, key: Any = _READ) -> None:
        self._raw = raw
        self.attempt = attempt
        self.origin_topic = origin_topic
        self.value = raw.value() if value is _READ else value
        self._key = key
        self._state: hdr.State | None = None

    @property
    def key(self) -> Any:
        """The decoded key (``key_deserializer``); without one the bytes, or None."""
        return self._raw.key() if self._key is _READ else self._key

    @property
    def raw_key(self) -> bytes | None:
        key: bytes | None = self._raw.key()
        return key

    @property
    def raw_value(self) -> bytes | None:
        value: bytes | None = self._raw.value()
        return value

    @property
    def headers(self) -> hdr.Headers:
        return [(name, b"" if value is None else value) for name, value in hdr.user_headers(self._raw.headers())]

    @property
    def topic(self) -> str:
        topic: str = self._raw.topic()
        return topic

    @property
    def partition(self) -> int:
        partition: int = self._raw.partition()
        return partition

    @property
    def offset(self) -> int:
        offset: int = self._raw.offset()
        return offset

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch, as the broker or producer stamped it."""
        timestamp: int = self._raw.timestamp()[1]
        return timestamp

    def _kretry(self) -> hdr.State:
        if self._state is None:
            self._state = hdr.read(hdr.split(self._raw.headers())[1])
        return self._state

    @property
    def replays(self) -> int:
        return self._kretry().replays or 0

    @property
    def origin_partition(self) -> int:
        # On the main topic a record is its own origin, whatever headers a replay left on it (as the stage does).
        found = self._kretry().origin_partition if self.attempt else None
        return self.partition if found is None else found

    @property
    def origin_offset(self) -> int:
        found = self._kretry().origin_offset if self.attempt else None
        return self.offset if found is None else found

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, attempt={self.attempt})"
        )
