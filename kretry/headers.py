"""kretry's own record headers: plain UTF-8 text, so ``kcat -f '%h'`` shows them as they are.

A producer's headers travel untouched; kretry's are the names in OWN, set anew on every hop so that nothing
accumulates. Any other header is the producer's, even one named ``kretry-*`` (a ``kretry-trace-id`` of their
own, say). Reading them never raises: a missing or corrupt value reads as None.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

ORIGIN_TOPIC = "kretry-origin-topic"
ORIGIN_PARTITION = "kretry-origin-partition"
ORIGIN_OFFSET = "kretry-origin-offset"
ORIGIN_TIMESTAMP = "kretry-origin-timestamp"
ATTEMPT = "kretry-attempt"
DUE_AT = "kretry-due-at"
ERROR = "kretry-error"
GROUP = "kretry-group"
REPLAYS = "kretry-replays"
# On a DLQ record that stands in for one too large to forward: what was left out (e.g. "value,headers"). The
# original is still at kretry-origin-topic/-partition/-offset, which is what a replay of the stub puts back.
STUB = "kretry-stub"
ERROR_CLASS = "kretry-error-class"  # the exception's qualified class, e.g. "httpx.HTTPStatusError"
ERROR_TRACE = "kretry-error-trace"  # on DLQ records only: the end of the stack trace, TRACE_MAX_BYTES at most
# Exactly the names kretry writes: a name kretry does not know is never taken away from the producer.
OWN = frozenset(
    {
        ORIGIN_TOPIC,
        ORIGIN_PARTITION,
        ORIGIN_OFFSET,
        ORIGIN_TIMESTAMP,
        ATTEMPT,
        DUE_AT,
        ERROR,
        ERROR_CLASS,
        ERROR_TRACE,
        GROUP,
        REPLAYS,
        STUB,
    }
)

ERROR_MAX_BYTES = 1000
# Only the innermost frames, where the failure is; with everything else kretry adds it stays within the 8 KiB
# of headroom retry topics and the DLQ have over their main topic (admin.HEADROOM).
TRACE_MAX_BYTES = 3000

Headers = list[tuple[str, bytes]]
RawHeaders = Sequence[tuple[str, bytes | None]] | None


def split(headers: RawHeaders) -> tuple[Headers, dict[str, bytes]]:
    """The producer's headers, in order, and kretry's (the last value of a name wins)."""
    user: Headers = []
    ours: dict[str, bytes] = {}
    for name, value in headers or ():
        if name in OWN:
            ours[name] = value or b""
        else:
            user.append((name, value))  # type: ignore[arg-type]  # a None value travels as it came
    return user, ours


def user_headers(headers: RawHeaders) -> Headers:
    return split(headers)[0]


def _text(ours: dict[str, bytes], name: str) -> str | None:
    raw = ours.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _int(ours: dict[str, bytes], name: str) -> int | None:
    raw = ours.get(name)
    if raw is not None and raw.isdigit():  # ASCII digits, as kretry writes them: what the slow way reads too
        return int(raw)
    text = _text(ours, name)
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


class Origin(NamedTuple):
    """Where a record first failed: set once, copied on every later hop."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class State(NamedTuple):
    """kretry's headers as read from a record; every field is None when absent or unreadable."""

    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    origin_timestamp: int | None = None
    attempt: int | None = None
    due_at: int | None = None
    error: str | None = None
    group: str | None = None
    replays: int | None = None
    error_class: str | None = None
    error_trace: str | None = None


def due_and_group(headers: RawHeaders) -> tuple[int | None, str | None]:
    """``kretry-due-at`` and ``kretry-group`` only: what a retry stage reads of every record it takes."""
    due = group = None
    for name, value in headers or ():
        if name == DUE_AT:
            due = value
        elif name == GROUP:
            group = value
    return (
        None if due is None else _int({DUE_AT: due}, DUE_AT),
        None if group is None else _text({GROUP: group}, GROUP),
    )


def attempt_of(headers: RawHeaders) -> int | None:
    """``kretry-attempt`` only (the last one wins, as in :func:`split`): what a shared tier's stage reads of every
    record it hands to the handler."""
    found = None
    for name, value in headers or ():
        if name == ATTEMPT:
            found = value
    return None if found is None else _int({ATTEMPT: found}, ATTEMPT)


def read(ours: dict[str, bytes]) -> State:
    return State(
        origin_topic=_text(ours, ORIGIN_TOPIC) or None,
        origin_partition=_int(ours, ORIGIN_PARTITION),
        origin_offset=_int(ours, ORIGIN_OFFSET),
        origin_timestamp=_int(ours, ORIGIN_TIMESTAMP),
        attempt=_int(ours, ATTEMPT),
        due_at=_int(ours, DUE_AT),
        error=_text(ours, ERROR),
        group=_text(ours, GROUP),
        replays=_int(ours, REPLAYS),
        error_class=_text(ours, ERROR_CLASS),
        error_trace=_text(ours, ERROR_TRACE),
    )


def origin_of(state: State, fallback: Origin) -> Origin:
    """The origin the headers carry, field by field, else the best we know: the record at hand."""
    return Origin(
        topic=state.origin_topic if state.origin_topic is not None else fallback.topic,
        partition=state.origin_partition if state.origin_partition is not None else fallback.partition,
        offset=state.origin_offset if state.origin_offset is not None else fallback.offset,
        timestamp=state.origin_timestamp if state.origin_timestamp is not None else fallback.timestamp,
    )


def origin_from(ours: dict[str, bytes], here: Origin) -> Origin:
    """``origin_of(read(ours), here)``, reading the four origin headers only: what every forward of a retry stage
    needs."""
    topic = _text(ours, ORIGIN_TOPIC) or None
    partition = _int(ours, ORIGIN_PARTITION)
    offset = _int(ours, ORIGIN_OFFSET)
    timestamp = _int(ours, ORIGIN_TIMESTAMP)
    return Origin(
        topic=here.topic if topic is None else topic,
        partition=here.partition if partition is None else partition,
        offset=here.offset if offset is None else offset,
        timestamp=here.timestamp if timestamp is None else timestamp,
    )


def int_of(ours: dict[str, bytes], name: str) -> int | None:
    """One of kretry's whole-number headers (see :func:`split`), None when absent or unreadable."""
    return _int(ours, name)


def _shown(render: Callable[[object], str], obj: object) -> str | None:
    try:
        return render(obj)
    except BaseException:  # a handler's own __str__ or __repr__: describing its failure must not fail the stage
        return None


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"``, cut to ERROR_MAX_BYTES of UTF-8 without splitting a character. Never raises.

    A message that cannot be read is shown by its repr, else said to be unreadable. ``SystemExit`` names its code,
    which its message leaves out when it is None.
    """
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        text = f"{name}: sys.exit({_shown(repr, exc.code) or '?'}) called"
    else:
        message = _shown(str, exc)
        if message is None:
            shown = _shown(repr, exc)
            text = f"{name} (its message could not be read)" if shown is None else f"{name}: {shown}"
        else:
            text = f"{name}: {message}" if message else name
    return truncate(text, ERROR_MAX_BYTES)


def error_class(exc: BaseException) -> str:
    """``"module.QualifiedName"`` of the exception's class; builtins are named as Python names them."""
    kind = type(exc)
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


_DIRECT = "\nThe above exception was the direct cause of the following exception:\n\n"
_DURING = "\nDuring handling of the above exception, another exception occurred:\n\n"


def error_trace(exc: BaseException) -> str:
    """The end of the exception's traceback (causes first, as Python prints them), at most TRACE_MAX_BYTES: where
    each frame is, without its source line. Never raises.

    traceback.format_exception reads every frame's source and, since Python 3.11, parses it for the error's
    position: measured, a third of a retry stage's time when every record reaches the DLQ.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        frames = [
            f'  File "{frame.f_code.co_filename}", line {lineno}, in {frame.f_code.co_name}\n'
            for frame, lineno in traceback.walk_tb(current.__traceback__)
        ]
        parts.append("Traceback (most recent call last):\n" + "".join(frames) + describe_error(current) + "\n")
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        if cause is not None:
            parts.append(_DIRECT if cause is current.__cause__ else _DURING)
        current = cause
    raw = "".join(reversed(parts)).encode("utf-8", errors="replace")
    if len(raw) <= TRACE_MAX_BYTES:
        return raw.decode("utf-8")
    return "..." + raw[len(raw) - TRACE_MAX_BYTES + 3 :].decode("utf-8", errors="ignore")


def truncate(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8", errors="replace")  # a lone surrogate becomes "?", which every header can carry
    if len(raw) <= max_bytes:
        return raw.decode("utf-8")
    return raw[: max_bytes - 3].decode("utf-8", errors="ignore") + "..."


def build(
    user: Headers,
    *,
    origin: Origin,
    attempt: int,
    error: str,
    group: str,
    due_at: int | None,
    replays: int | None,
    error_class: str | None = None,
    trace: str | None = None,
) -> Headers:
    """The headers of a forwarded record: the producer's own first, unchanged, then kretry's, fresh."""
    # Built on every forwarded record: bytes formatting straight away, no intermediate strings.
    out = [
        *user,
        (ORIGIN_TOPIC, origin.topic.encode("utf-8")),
        (ORIGIN_PARTITION, b"%d" % origin.partition),
        (ORIGIN_OFFSET, b"%d" % origin.offset),
        (ORIGIN_TIMESTAMP, b"%d" % origin.timestamp),
        (ATTEMPT, b"%d" % attempt),
        (ERROR, error.encode("utf-8")),
        (GROUP, group.encode("utf-8")),
    ]
    if due_at is not None:
        out.append((DUE_AT, b"%d" % due_at))
    if replays:
        out.append((REPLAYS, b"%d" % replays))
    if error_class is not None:
        out.append((ERROR_CLASS, error_class.encode("utf-8")))
    if trace is not None:
        out.append((ERROR_TRACE, trace.encode("utf-8")))
    return out
