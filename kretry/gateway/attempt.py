"""One delivery attempt of one event: to each integration still pending, all at once; then what follows it is
sent and acknowledged before the attempt counts as done: nothing when all succeeded, a retry request for the
integrations that failed for now (the owner schedules it at the next entry, or dead-letters it), a dead letter
for those that refused it for good (a 4xx but 408 and 429).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kretry.gateway import deadletter
from kretry.gateway.configs import HTTP, Config, Integration
from kretry.gateway.deliver import Deliverer, HttpTarget, Outcome, SqsTarget
from kretry.gateway.events import RETRY, Request, Scheduled, ms_ceil
from kretry.gateway.outbox import Outbox
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.topics import Names, request_partition

Observe = Callable[[str, str, str], None]  # (identifier, integration type, outcome)


def target(integration: Integration) -> HttpTarget | SqsTarget:
    if integration.kind == HTTP:
        return HttpTarget(url=integration.url, username=integration.username, password=integration.password)
    return SqsTarget(
        url=integration.url,
        region=integration.region or "us-east-1",
        access_key=integration.access_key,
        secret_key=integration.secret_key,
    )


@dataclass(frozen=True)
class Attempt:
    key: bytes
    body: bytes
    event: Scheduled


async def attempt(
    item: Attempt,
    config: Config | None,
    deliverer: Deliverer,
    outbox: Outbox,
    names: Names,
    settings: GatewaySettings,
    observe: Observe,
) -> None:
    """Deliver ``item`` and send what follows; raises OSError when the broker did not take that."""
    event = item.event
    if config is None:
        await _dead(item, "its configuration was deleted", {}, None, outbox, names, settings)
        return
    pending = [i for i in event.pending if i < len(config.integrations)]
    outcomes = await asyncio.gather(*(deliverer.deliver(target(config.integrations[i]), item.body) for i in pending))
    later: dict[int, Outcome] = {}
    never: dict[int, Outcome] = {}
    for i, outcome in zip(pending, outcomes, strict=True):
        kind = config.integrations[i].kind
        if outcome.ok:
            observe(event.identifier, kind, "delivered")
        elif outcome.retry:
            later[i] = outcome
            observe(event.identifier, kind, "failed")
        else:
            never[i] = outcome
            observe(event.identifier, kind, "refused")
    if never:
        errors = {i: o.error or "refused" for i, o in never.items()}
        shown = Scheduled(event.identifier, event.attempt, event.due_ms, tuple(never))
        await _dead(
            Attempt(item.key, item.body, shown), "delivery refused for good", errors, config, outbox, names, settings
        )
    if later:
        # Retry-After: an absolute time, the earliest the integration wants to hear from us again.
        not_before = max((o.not_before or 0.0) for o in later.values())
        request = Request(
            kind=RETRY,
            id=uuid.uuid4().hex,
            origin="",
            deadline_ms=0,
            identifier=event.identifier,
            body=item.body,
            pending=tuple(later),
            errors={i: o.error or "failed" for i, o in later.items()},
            not_before_ms=ms_ceil(not_before) if not_before else 0,
            attempt=event.attempt,
        )
        partition = request_partition(item.key, settings.gateway_partitions)
        await outbox.send(names.requests, item.key, request.encode(), partition=partition)


async def _dead(
    item: Attempt,
    reason: str,
    errors: dict[int, str],
    config: Config | None,
    outbox: Outbox,
    names: Names,
    settings: GatewaySettings,
) -> None:
    dlq = settings.dlq_topic
    if dlq is None:
        return
    headers = deadletter.headers(item.event, reason, errors, config, names.due, names.group("delivery"))
    await outbox.send(dlq, item.key, item.body, headers)
