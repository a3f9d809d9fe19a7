"""Pure: a DLQ record as the console shows it: its value as JSON, text or hex, its headers, its path through the
ladder. Masked as the Retrier says (kretry.masking); escaping is the templates' (autoescape), never done here."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass

from kretry.dlq import DeadRecord, error_kind, iso
from kretry.masking import Mask, mask_headers, mask_value
from kretry.retrier import HandlerSpec

SHOWN_MAX = 64 * 1024  # bytes of a value shown; the rest is cut, and the page says so
_PRINTABLE = frozenset(string.printable) - frozenset("\x0b\x0c")


@dataclass(frozen=True)
class Value:
    kind: str  # "json", "text", "hex" or "none" (a null value, or one hidden whole)
    text: str
    note: str | None = None  # what was masked or cut


def _hex(raw: bytes) -> str:
    return "\n".join(raw[i : i + 16].hex(" ") for i in range(0, len(raw), 16))


def text_of(raw: bytes) -> str | None:
    """``raw`` as text when it is UTF-8 made of printable characters (any script), else None."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return decoded if all(c in _PRINTABLE or c.isprintable() for c in decoded) else None


def value(raw: bytes | None, mask: Mask | None = None) -> Value:
    shown, note = mask_value(mask, raw)
    if shown is None:
        return Value("none", "", note or "null (no value)")
    cut = len(shown) > SHOWN_MAX
    if cut:
        note = "; ".join(filter(None, [note, f"first {SHOWN_MAX} of {len(shown)} bytes shown"]))
        shown = shown[:SHOWN_MAX]
    else:
        try:
            parsed = json.loads(shown)
        except ValueError:
            pass
        else:
            return Value("json", json.dumps(parsed, indent=2, ensure_ascii=False), note)
    text = text_of(shown)
    return Value("hex", _hex(shown), note) if text is None else Value("text", text, note)


def header_text(raw: bytes | None) -> str:
    if raw is None:
        return "(null)"
    text = text_of(raw)
    return f"hex: {raw.hex(' ')}" if text is None else text


def headers(record: DeadRecord, mask: Mask | None = None) -> list[tuple[str, str]]:
    """Every header the record carries: the producer's (masked) and kretry's, in that order."""
    user = [(name, header_text(raw)) for name, raw in mask_headers(mask, record.headers)]
    s = record.state
    ours = {
        "kretry-origin-topic": s.origin_topic,
        "kretry-origin-partition": s.origin_partition,
        "kretry-origin-offset": s.origin_offset,
        "kretry-origin-timestamp": s.origin_timestamp,
        "kretry-attempt": s.attempt,
        "kretry-group": s.group,
        "kretry-replays": s.replays,
        "kretry-error-class": s.error_class,
        "kretry-error": s.error,
        "kretry-stub": record.stub,
    }
    return user + [(name, str(v)) for name, v in ours.items() if v is not None]


@dataclass(frozen=True)
class Hop:
    where: str
    what: str


def path(record: DeadRecord, dlq_topic: str, handlers: Mapping[str, HandlerSpec]) -> list[Hop]:
    """Where the record went: its origin, each attempt's topic (as the Retrier's schedule names them), the DLQ, and
    what the ledger says happened since."""
    s = record.state
    origin = s.origin_topic or "(unknown topic)"
    hops = [Hop(f"{origin}[{s.origin_partition}]@{s.origin_offset}", f"produced at {iso(s.origin_timestamp)}")]
    spec = handlers.get(origin)
    topics = spec.attempt_topics if spec is not None else []
    for attempt in range(1, s.attempt or 0):  # kretry-attempt on a DLQ record: the attempts made
        where = topics[attempt] if attempt < len(topics) else f"retry attempt {attempt}"
        hops.append(Hop(where, f"attempt {attempt}"))
    failed = f"failed: {error_kind(record)}" + (f" (replayed {record.replays} times before)" if record.replays else "")
    hops.append(
        Hop(f"{dlq_topic} {record.partition}:{record.offset}", f"dead-lettered at {iso(record.timestamp)}; {failed}")
    )
    if record.status != "pending":
        hops.append(Hop(record.status, f"per the replay ledger, at {iso(record.status_at)}"))
    return hops
