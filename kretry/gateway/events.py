"""Pure: what identifies an event, and the records that carry it through the gateway's topics.

An event is ``(identifier, eventBody)``; posting the same one again is a retry of it. "The same" is the same
identifier and the same JSON value: the body is put in canonical form (keys sorted, no whitespace), so neither key
order nor spacing makes a new event. Its id, the sha256 of both, keys every record about it.

Headers of a scheduled event (plain UTF-8, so ``kcat -f '%h'`` and ``kretry dlq peek`` show them):
``kretry-gateway-identifier``, ``-attempt`` (the n-th delivery scheduled for it), ``-due`` (epoch ms),
``-leave`` (epoch ms: when it leaves the wheel bucket it is in), ``-pending`` (the indexes of the integrations
still to deliver to, e.g. ``0,1``), and on a dead letter ``-outcomes`` (one line an integration).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IDENTIFIER = "kretry-gateway-identifier"
ATTEMPT = "kretry-gateway-attempt"
DUE = "kretry-gateway-due"
LEAVE = "kretry-gateway-leave"
PENDING = "kretry-gateway-pending"
OUTCOMES = "kretry-gateway-outcomes"

Headers = list[tuple[str, bytes]]


def canonical(body: Any) -> bytes:
    """The one byte string of a JSON value: keys sorted, no whitespace, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_id(identifier: str, body: bytes) -> str:
    return hashlib.sha256(identifier.encode() + b"\0" + body).hexdigest()


def ms_ceil(seconds: float) -> int:
    """Epoch seconds as whole milliseconds, rounded up: a time kept this way is never earlier than meant."""
    return math.ceil(seconds * 1000)


@dataclass(frozen=True)
class Scheduled:
    """An event on its way to delivery (in a wheel bucket or the due topic)."""

    identifier: str
    attempt: int
    due_ms: int
    pending: tuple[int, ...]
    leave_ms: int | None = None

    def headers(self) -> Headers:
        out = [
            (IDENTIFIER, self.identifier.encode()),
            (ATTEMPT, str(self.attempt).encode()),
            (DUE, str(self.due_ms).encode()),
            (PENDING, ",".join(map(str, self.pending)).encode()),
        ]
        if self.leave_ms is not None:
            out.append((LEAVE, str(self.leave_ms).encode()))
        return out

    @classmethod
    def read(cls, headers: Sequence[tuple[str, bytes | None]] | None) -> Scheduled | None:
        """The event's headers, or None when a record lacks them (not one of ours)."""
        found = {name: value or b"" for name, value in headers or () if name.startswith("kretry-gateway-")}
        try:
            identifier = found[IDENTIFIER].decode()
            pending = found.get(PENDING, b"").decode()
            return cls(
                identifier=identifier,
                attempt=int(found.get(ATTEMPT, b"1")),
                due_ms=int(found.get(DUE, b"0")),
                pending=tuple(int(p) for p in pending.split(",") if p.strip()),
                leave_ms=int(found[LEAVE]) if LEAVE in found else None,
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return None


def outcome_lines(outcomes: Mapping[int, str], names: Mapping[int, str]) -> str:
    """``0 HTTP http://a/b: HTTP 503`` a line each, in index order."""
    return "\n".join(f"{i} {names.get(i, '?')}: {outcomes[i]}" for i in sorted(outcomes))


# -- requests, replies, counts (JSON values) ---------------------------------------------------------------


POST, RETRY, CONFIG, DELETE = "post", "retry", "config", "delete"


@dataclass(frozen=True)
class Request:
    """What an instance asks of the owner of the event's (or identifier's) partition."""

    kind: str  # POST, RETRY, CONFIG or DELETE
    id: str  # unique per request: a request read twice (after a crash) is answered, not counted, again
    origin: str  # the asking instance, whose reply partition gets the answer; "" for a retry (no one waits)
    deadline_ms: int  # past it the owner refuses the request: the asker has answered 503 already
    identifier: str
    body: bytes = b""
    pending: tuple[int, ...] = ()  # RETRY: the integrations that failed
    errors: Mapping[int, str] = field(default_factory=dict)  # RETRY: why each failed
    final: bool = False  # RETRY: failed for good (a 4xx): dead-letter now
    not_before_ms: int = 0  # RETRY: no earlier than this (Retry-After)
    attempt: int = 0  # RETRY: the attempt that failed
    config: Mapping[str, Any] | None = None  # CONFIG: the stored form

    def encode(self) -> bytes:
        out: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "origin": self.origin,
            "deadline": self.deadline_ms,
            "identifier": self.identifier,
        }
        if self.body:
            out["body"] = self.body.decode()
        if self.kind == RETRY:
            out.update(
                pending=list(self.pending),
                errors={str(k): v for k, v in self.errors.items()},
                final=self.final,
                not_before=self.not_before_ms,
                attempt=self.attempt,
            )
        if self.config is not None:
            out["config"] = self.config
        return json.dumps(out, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Request:
        d = json.loads(raw)
        return cls(
            kind=d["kind"],
            id=d["id"],
            origin=d["origin"],
            deadline_ms=int(d["deadline"]),
            identifier=d["identifier"],
            body=d.get("body", "").encode(),
            pending=tuple(int(p) for p in d.get("pending", ())),
            errors={int(k): str(v) for k, v in d.get("errors", {}).items()},
            final=bool(d.get("final", False)),
            not_before_ms=int(d.get("not_before", 0)),
            attempt=int(d.get("attempt", 0)),
            config=d.get("config"),
        )


@dataclass(frozen=True)
class Reply:
    id: str
    status: int
    text: str

    def encode(self) -> bytes:
        return json.dumps({"id": self.id, "status": self.status, "text": self.text}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Reply:
        d = json.loads(raw)
        return cls(id=d["id"], status=int(d["status"]), text=d["text"])


@dataclass(frozen=True, slots=True)  # one per event remembered: kept small
class Count:
    """How many deliveries of one event were scheduled, and until when it is remembered."""

    n: int
    last_due_ms: int
    expires_ms: int
    # The requests counted (the latest few, with their answer): one read again after a crash is not counted twice.
    answered: tuple[tuple[str, int, str], ...] = ()

    def encode(self) -> bytes:
        return json.dumps(
            {"n": self.n, "last_due": self.last_due_ms, "expires": self.expires_ms, "answered": self.answered},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Count:
        d = json.loads(raw)
        answered = tuple((str(a[0]), int(a[1]), str(a[2])) for a in d.get("answered", ()))
        return cls(n=int(d["n"]), last_due_ms=int(d["last_due"]), expires_ms=int(d["expires"]), answered=answered)

    def answer_to(self, request_id: str) -> tuple[int, str] | None:
        for rid, status, text in self.answered:
            if rid == request_id:
                return status, text
        return None


def keep_answers(answered: Iterable[tuple[str, int, str]], limit: int = 16) -> tuple[tuple[str, int, str], ...]:
    return tuple(list(answered)[-limit:])
