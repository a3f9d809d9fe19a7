"""Value deserializers: what a handler's ``msg.value`` is made of. kretry always forwards the raw bytes."""

from __future__ import annotations

import json as _json
from collections.abc import Callable
from typing import Any

Deserializer = Callable[[bytes | None], Any]


def json(value: bytes | None) -> Any:
    """UTF-8 JSON; a null value (a tombstone) stays None."""
    if value is None:
        return None
    return _json.loads(value)


class DeserializationError(Exception):
    """The record's value could not be decoded: it goes to the DLQ at once, reason ``deserialization``."""
