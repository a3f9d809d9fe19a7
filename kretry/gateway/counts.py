"""Pure: what the owner of an event's partition decides for one request, given the event's count.

Pretry's rules, exact: the n-th post of the same event is scheduled at the n-th entry of the schedule, and once
``maxRetry`` were accepted a post is refused (412). A delivery that failed counts as a retry the same way: it is
scheduled at the next entry, for the integrations that failed only, or dead-lettered after the last. A count is
forgotten ``ttl`` after the event's last due time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kretry.gateway.configs import Config
from kretry.gateway.events import POST, Count, Request, Scheduled, keep_answers

NOT_FOUND = "Configurations are not found for this identifier!"
EXCEEDED = "The event retry exceed due to reached max retry count!"
FIRST = "The event scheduled for retry first time!"
EXPIRED = "not confirmed in time; the event was not scheduled"


def scheduled_text(n: int) -> str:
    return FIRST if n == 1 else f"The event scheduled for retry {n}"


@dataclass(frozen=True)
class Decision:
    status: int = 0  # the reply to a post (0: no one waits for one)
    text: str = ""
    schedule: Scheduled | None = None
    dead: str | None = None  # dead-letter the event, for this reason
    count: Count | None = None  # the new count to keep (None: unchanged)
    errors: dict[int, str] = field(default_factory=dict)


def decide(
    request: Request, count: Count | None, config: Config | None, now_ms: int, ttl_ms: int, *, remember: bool = True
) -> Decision:
    """``remember``: keep the request's answer in its count, for a request that may be read again (through the
    requests topic, after a crash). A post decided where it was taken is never read again: its answer would only
    cost memory, a few hundred bytes an event."""
    if count is not None and count.expires_ms <= now_ms:
        count = None
    if count is not None:
        answer = count.answer_to(request.id)
        if answer is not None:  # read again after a crash: answered, not counted again
            return Decision(status=answer[0], text=answer[1])
    if request.kind == POST:
        return _post(request, count, config, now_ms, ttl_ms, remember)
    return _retry(request, count, config, now_ms, ttl_ms)


def _post(
    request: Request, count: Count | None, config: Config | None, now_ms: int, ttl_ms: int, remember: bool
) -> Decision:
    if request.deadline_ms < now_ms:
        return Decision(status=503, text=EXPIRED)
    if config is None:
        return Decision(status=404, text=NOT_FOUND)
    n = count.n if count is not None else 0
    if n >= config.max_retry:
        return Decision(status=412, text=EXCEEDED)
    n += 1
    due = now_ms + round(config.delay(n) * 1000)
    text = scheduled_text(n)
    pending = tuple(range(len(config.integrations)))
    return Decision(
        status=200,
        text=text,
        schedule=Scheduled(config.identifier, n, due, pending),
        count=_counted(count, n, due, ttl_ms, (request.id, 200, text) if remember else None),
    )


def _retry(request: Request, count: Count | None, config: Config | None, now_ms: int, ttl_ms: int) -> Decision:
    errors = dict(request.errors)
    if config is None:
        return Decision(dead="its configuration was deleted", errors=errors)
    if request.final:
        return Decision(dead="delivery refused for good", errors=errors)
    n = max(count.n if count is not None else 0, request.attempt)
    if n >= config.max_retry:
        return Decision(dead=f"retries exhausted: {n} of maxRetry {config.max_retry}", errors=errors)
    n += 1
    due = max(now_ms + round(config.delay(n) * 1000), request.not_before_ms)
    pending = tuple(i for i in request.pending if i < len(config.integrations))
    return Decision(
        schedule=Scheduled(config.identifier, n, due, pending),
        count=_counted(count, n, due, ttl_ms, (request.id, 0, "")),
        errors=errors,
    )


def _counted(count: Count | None, n: int, due: int, ttl_ms: int, answer: tuple[str, int, str] | None) -> Count:
    last_due = max(due, count.last_due_ms if count is not None else 0)
    answered = count.answered if count is not None else ()
    if answer is not None:
        answered = keep_answers([*answered, answer])
    return Count(n=n, last_due_ms=last_due, expires_ms=last_due + ttl_ms, answered=answered)
