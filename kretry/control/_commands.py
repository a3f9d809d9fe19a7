"""Pure: an operator's command to a retry tier, as JSON on the control topic, and which waiting record it covers.

A command is ``{"id", "action": "flush" | "kill", "topic": <the tier's retry topic>, "filters": {"key", "error",
"since", "until"}, "issued_at": <epoch ms>, "reason"}``. It covers a record of ``topic`` produced before
``issued_at`` (its timestamp, set by the stage that forwarded it) that every given filter matches: ``key`` its key as
UTF-8 text, exactly; ``error`` a case-insensitive substring of its kretry-error; ``since``/``until`` its timestamp
(ms, ``until`` excluded) — the meaning ``kretry dlq`` gives them. A record produced later waits as usual.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from kretry.dlq import Filter

FLUSH = "flush"  # due now: handled as a due record would be
KILL = "kill"  # to the DLQ now, with the operator's reason, instead of being handled
ACTIONS = (FLUSH, KILL)
KILLED = "killed by operator"  # how a killed record's kretry-error begins
FILTERS = ("key", "error", "since", "until")  # the dlq filters that mean something for a record still waiting


@dataclass(frozen=True)
class Command:
    action: str
    topic: str
    issued_at: int  # epoch ms: the command covers records produced before it
    filters: Filter = field(default_factory=Filter)
    reason: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if self.filters.origin_topic is not None or self.filters.group is not None:
            raise ValueError(f"a tier command takes only the filters {', '.join(FILTERS)}")

    def covers(self, key: bytes | None, error: str | None, timestamp: int) -> bool:
        """Whether this command covers a record of its topic with this key, kretry-error and timestamp (ms)."""
        if timestamp >= self.issued_at:
            return False
        only = self.filters
        if only.key is not None and (key is None or key.decode("utf-8", errors="replace") != only.key):
            return False
        if only.error is not None and only.error.lower() not in (error or "").lower():
            return False
        if only.since is not None and timestamp < only.since:
            return False
        return only.until is None or timestamp < only.until

    def error_text(self, previous: str | None) -> str:
        """The kretry-error of a record this command kills: the operator's reason, then the error it waited for."""
        text = f"{KILLED}: {self.reason or 'kretry tier kill'} (command {self.id})"
        return f"{text}; last error: {previous}" if previous else text

    def encode(self) -> bytes:
        filters = {k: v for k, v in asdict(self.filters).items() if v is not None}
        body = {"id": self.id, "action": self.action, "topic": self.topic, "filters": filters}
        return json.dumps({**body, "issued_at": self.issued_at, "reason": self.reason}).encode("utf-8")


def decode(value: bytes | None) -> Command:
    """A command from a control record's value; ValueError when it is not one."""
    try:
        body: Any = json.loads(value or b"")
        filters = body.get("filters") or {}
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise ValueError(f"unknown filters {sorted(unknown)}")
        return Command(
            action=str(body["action"]),
            topic=str(body["topic"]),
            issued_at=int(body["issued_at"]),
            filters=Filter(**{k: filters[k] for k in FILTERS if filters.get(k) is not None}),
            reason=str(body.get("reason") or ""),
            id=str(body["id"]),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"not a tier command: {exc}") from None


class Orders:
    """The commands a worker has read so far, for its stages to look up. The control reader adds; each stage reads
    ``for_topic`` again whenever ``generation`` moves (a tuple swapped whole: safe across threads)."""

    def __init__(self) -> None:
        self.generation = 0
        self._by_topic: dict[str, tuple[Command, ...]] = {}
        self._seen: set[str] = set()

    def add(self, command: Command) -> bool:
        """Remember ``command``; False when it was seen already (read twice, or sent twice)."""
        if command.id in self._seen:
            return False
        self._seen.add(command.id)
        self._by_topic[command.topic] = (*self._by_topic.get(command.topic, ()), command)
        self.generation += 1
        return True

    def for_topic(self, topic: str) -> tuple[Command, ...]:
        return self._by_topic.get(topic, ())


def order(commands: tuple[Command, ...], key: bytes | None, error: str | None, timestamp: int) -> Command | None:
    """The command a waiting record obeys: a kill before a flush (the operator wants it gone), else the first."""
    found = None
    for command in commands:
        if command.covers(key, error, timestamp):
            if command.action == KILL:
                return command
            found = found or command
    return found
