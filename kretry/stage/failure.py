"""Where a failed record goes: pure functions from a refused forward to the record to send instead; and letting go
of a handled failure's stack.

A record its target topic refuses for good goes to the DLQ instead; one the DLQ refuses goes there as a *stub*:
kretry's headers, with ``kretry-stub`` naming what was left out: first the value and the producer's headers, then
the key too. The original stays where ``kretry-origin-*`` points, which is what a replay of the stub puts back.
Nothing is smaller than a key-less stub: a DLQ that refuses that refuses everything, and the stage stops.
"""

from __future__ import annotations

from kretry import headers as hdr
from kretry.forward import Outgoing

STUB_WITHOUT_VALUE = b"value,headers"
STUB_WITHOUT_KEY = b"key,value,headers"


def instead(out: Outgoing, reason: str, dlq: str | None) -> Outgoing | None:
    """What to send when ``out`` was refused for good (``reason``): the DLQ, then ever smaller stubs there."""
    if dlq is None:
        return None
    note = f"forward to {out.topic} failed: {reason}"
    if out.topic != dlq:
        return Outgoing(dlq, out.key, out.value, with_error(out.headers, note), out.partition)
    return stub(out, note)


def stub(out: Outgoing, note: str) -> Outgoing | None:
    """A smaller stand-in for ``out``, or None when there is nothing left to leave out."""
    _, ours = hdr.split(out.headers)
    left_out = ours.get(hdr.STUB)
    if left_out is None:
        note = f"{note}; {len(out.value or b'')}-byte value and the producer's headers dropped"
        key, mark = out.key, STUB_WITHOUT_VALUE
    elif out.key is not None and left_out != STUB_WITHOUT_KEY:
        note = f"{note}; {len(out.key)}-byte key dropped too"
        key, mark = None, STUB_WITHOUT_KEY
    else:
        return None
    headers = [(name, value) for name, value in ours.items() if name != hdr.STUB]
    return Outgoing(out.topic, key, None, [*with_error(headers, note), (hdr.STUB, mark)], out.partition)


def with_error(headers: hdr.Headers, note: str) -> hdr.Headers:
    """The same headers with the kretry-error text extended by ``note``."""
    out: hdr.Headers = []
    for name, value in headers:
        if name == hdr.ERROR:
            text = (value or b"").decode("utf-8", errors="replace")
            value = hdr.truncate(f"{text}; {note}" if text else note, hdr.ERROR_MAX_BYTES).encode("utf-8")
        out.append((name, value))
    return out


def release(exc: BaseException) -> None:
    """Drop the tracebacks of a failure kretry is done with, and of its causes.

    A traceback's frames link to their callers' frames (``f_back``), and a caller such as the dispatcher still holds
    the exception in a local when it returns: a reference cycle for every failed record, which only the garbage
    collector frees, walking every object in flight each time. Measured on the 3-hop retry path: most of a stage's
    time. Without the tracebacks, reference counting frees it all at once.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:  # a cycle of causes ends here too
        current.__traceback__ = None
        seen += 1
        current = current.__cause__ or current.__context__
