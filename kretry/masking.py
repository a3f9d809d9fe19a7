"""Pure: what a person may see of a record's value and headers. PII ends up in DLQs; ``Retrier(..., mask=...)``
says what the console and the worker's ``/v1/dead_set`` hide.

``mask`` is either a list of field names, hidden wherever they occur in a JSON value (at any depth) and as header
names, or a callable ``mask(value: bytes | None) -> bytes | str | None`` that returns what may be shown. A value the
field list cannot be applied to (not a JSON object or array) is hidden whole: a mask exists because something must
not be shown, and a guess could show it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from kretry.errors import ConfigError

MASKED = "***"
MaskFunc = Callable[[bytes | None], bytes | str | None]
Mask = MaskFunc | Sequence[str]


def checked(mask: Any) -> Mask | None:
    """``mask`` as given to the Retrier, or a ConfigError that says what is wrong with it."""
    if mask is None or callable(mask):
        return mask  # type: ignore[no-any-return]
    if isinstance(mask, (str, bytes)) or not isinstance(mask, Sequence):
        raise ConfigError(f"mask: a list of field names or a callable, got {mask!r}")
    if not mask or not all(isinstance(name, str) and name.strip() for name in mask):
        raise ConfigError(f"mask: field names must be non-empty strings, got {list(mask)!r}")
    return tuple(mask)


def _hide(obj: Any, names: frozenset[str]) -> Any:
    if isinstance(obj, dict):
        return {k: MASKED if k in names else _hide(v, names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hide(v, names) for v in obj]
    return obj


def mask_value(mask: Mask | None, value: bytes | None) -> tuple[bytes | None, str | None]:
    """What may be shown of ``value``, and a note on what was hidden (None: nothing)."""
    if mask is None or value is None:
        return value, None
    if callable(mask):
        try:
            shown = mask(value)
        except Exception as exc:  # the user's code: a failing mask hides everything rather than nothing
            return None, f"hidden: the mask raised {type(exc).__name__}"
        return (shown.encode() if isinstance(shown, str) else shown), "masked by the Retrier's mask"
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, (dict, list)):
        return None, f"hidden: {len(value)} bytes that are not a JSON object, and the mask names fields"
    names = frozenset(mask)
    return json.dumps(_hide(parsed, names)).encode(), f"fields {', '.join(sorted(names))} masked"


def mask_headers(mask: Mask | None, headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    """The headers with the values of those the field list names hidden (a callable mask applies to values only)."""
    if mask is None or callable(mask):
        return list(headers)
    names = frozenset(mask)
    return [(name, MASKED.encode() if name in names else value) for name, value in headers]
