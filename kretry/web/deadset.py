"""GET /v1/dead_set and POST /v1/dead_set/replay: parse the request (pure), call kretry.dlq off the event loop.

GET  /v1/dead_set?count=N&state=S&FILTERS  the oldest N DLQ records in state S (pending, replayed, discarded,
                                           all; default pending), each with its state
POST /v1/dead_set/replay                   {"count": N, FILTERS} or {"offsets": ["p:o", ...], FILTERS}; optional
                                           "max_replays" and "dry_run"

FILTERS, the same as the CLI's: ``topic`` (origin topic), ``error`` (substring of kretry-error, any case), ``key``,
``since`` and ``until`` (ISO-8601, or a duration meaning that long ago: "2h"), ``group``.

Values and headers are masked as the Retrier's ``mask`` says, as in the console.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kretry import dlq
from kretry.config import Settings
from kretry.dlq import DeadRecord
from kretry.masking import Mask, mask_headers, mask_value
from kretry.web import guard
from kretry.web.body import BadRequest, read_body
from kretry.web.responses import JSONAnswer

MAX_COUNT = 1000
DEFAULT_COUNT = 10
# The filters besides "topic" (the origin topic, passed always), named as dlq's keyword arguments are.
_FILTERS = ("error", "key", "since", "until", "group")
_PEEK_PARAMS = frozenset({"count", "state", "topic", *_FILTERS})
_REPLAY_FIELDS = frozenset({"count", "offsets", "max_replays", "dry_run", "topic", *_FILTERS})


def _count(raw: Any, default: int | None) -> int | None:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise BadRequest(f"count must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"count must be an integer, got {raw!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise BadRequest(f"count must be between 1 and {MAX_COUNT}, got {value}")
    return value


def filters(given: Mapping[str, Any], now_ms: int | None, names: Sequence[str] = _FILTERS) -> dict[str, Any]:
    """The filters ``names`` a request gives, as dlq's keyword arguments. Only those it gives are passed: kretry.dlq
    without such a keyword still serves the others."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: dict[str, Any] = {}
    for name in names:
        value = given.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f'"{name}" must be a non-empty string')
        if name in ("since", "until"):
            try:
                out[name] = dlq.parse_when(value, now)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        else:
            out[name] = value
    return out


def _topic(raw: Any) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise BadRequest('"topic" must be a string')
    return raw


def peek_args(query: Mapping[str, Sequence[str]], now_ms: int | None = None) -> dict[str, Any]:
    """Pure given ``now_ms``: the keyword arguments of dlq.peek for a GET /v1/dead_set query (``parse_qs`` form,
    last value wins)."""
    unknown = sorted(set(query) - _PEEK_PARAMS)
    if unknown:
        raise BadRequest(f"unknown parameter {', '.join(unknown)}")
    last = {name: values[-1] for name, values in query.items() if values}
    args = {"count": _count(last.get("count"), DEFAULT_COUNT), "origin_topic": last.get("topic")}
    state = last.get("state")
    if state is not None:
        if state not in dlq.STATES:
            raise BadRequest(f"state must be one of {', '.join(dlq.STATES)}, got {state!r}")
        args["state"] = state
    return {**args, **filters(last, now_ms)}


def replay_args(body: Any, now_ms: int | None = None) -> dict[str, Any]:
    """Pure given ``now_ms``: the keyword arguments of dlq.replay for a POST /v1/dead_set/replay body."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - _REPLAY_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    offsets = body.get("offsets")
    count = _count(body.get("count"), None)
    if (offsets is None) == (count is None):
        raise BadRequest('give either "count" or "offsets"')
    args: dict[str, Any] = {"count": count}
    if offsets is not None:
        if not isinstance(offsets, list) or not offsets or not all(isinstance(o, str) for o in offsets):
            raise BadRequest('"offsets" must be a non-empty list of "partition:offset" strings')
        try:
            args["offsets"] = [dlq.parse_position(o) for o in offsets]
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    args["origin_topic"] = _topic(body.get("topic"))
    max_replays = body.get("max_replays", dlq.DEFAULT_MAX_REPLAYS)
    if isinstance(max_replays, bool) or not isinstance(max_replays, int) or max_replays < 0:
        raise BadRequest('"max_replays" must be a non-negative integer')
    args["max_replays"] = max_replays
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest('"dry_run" must be true or false')
    args["dry_run"] = dry_run
    return {**args, **filters(body, now_ms)}


def shown(record: DeadRecord, mask: Mask | None) -> dict[str, Any]:
    """A dead record as the endpoint answers it: value and headers masked as the Retrier says (kretry.masking), with
    ``masked`` saying what was hidden; the record in the DLQ is untouched."""
    out = record.to_json()
    if mask is None:
        return out
    value, note = mask_value(mask, record.value)
    out["value"] = dlq.text(value)
    out["headers"] = {name: dlq.text(raw) for name, raw in mask_headers(mask, record.headers)}
    out["masked"] = note
    return out


def routes(settings: Settings, policy: guard.Policy, mask: Mask | None = None) -> list[Route]:
    def check(request: Request) -> None:
        guard.enforce(policy, request)

    def peek(request: Request) -> Response:  # sync: Starlette runs it in its thread pool, off the event loop
        check(request)
        records = dlq.peek(settings, **peek_args(parse_qs(request.url.query)))
        return JSONAnswer({"count": len(records), "records": [shown(r, mask) for r in records]})

    async def replay(request: Request) -> Response:
        check(request)
        raw = await read_body(request)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        report = await run_in_threadpool(dlq.replay, settings, **replay_args(body))
        return JSONAnswer(report.to_json())

    return [
        Route("/v1/dead_set", peek, methods=["GET"]),
        Route("/v1/dead_set/replay", replay, methods=["POST"]),
    ]
