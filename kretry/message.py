"""The record a handler sees."""

from __future__ import annotations

from typing import Any

from kretry.headers import Headers, user_headers


class Message:
    """A record as read from ``topic``, with the producer's headers only (kretry's own are hidden).

    ``attempt`` is 0 on the main topic and n on its n-th retry topic; ``origin_topic`` is the main topic.
    ``value`` is what the handler's deserializer made of the bytes (the bytes themselves without one);
    ``raw_value`` is always the bytes, the thing kretry forwards.
    """

    __slots__ = ("_raw", "attempt", "origin_topic", "value")

    def __init__(self, raw: Any, attempt: int, origin_topic: str, value: Any = None, *, decoded: bool = False):
        self._raw = raw
        self.attempt = attempt
        self.origin_topic = origin_topic
        self.value = value if decoded else raw.value()

    @property
    def key(self) -> bytes | None:
        key: bytes | None = self._raw.key()
        return key

    @property
    def raw_value(self) -> bytes | None:
        value: bytes | None = self._raw.value()
        return value

    @property
    def headers(self) -> Headers:
        return user_headers(self._raw.headers())

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

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, attempt={self.attempt})"
        )
