"""Pure: a dead-set page's query string and an action's form, as kretry.dlq's arguments. A form sends every field,
empty or not: an empty one is no filter."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kretry import dlq
from kretry.web.body import BadRequest
from kretry.web.deadset import filters

# The form's fields: the origin topic, then the filters named as dlq's keyword arguments are.
FIELDS = ("topic", "error_type", "key", "error", "since", "until", "group")
PAGE_SIZE = 25
MATCHING_MAX = 1000  # records one "replay all matching" takes at most: the same bound as the HTTP API's


@dataclass(frozen=True)
class Query:
    given: dict[str, str]  # the non-empty fields, as typed: for the form and the links
    only: dict[str, Any]  # as kretry.dlq's keyword arguments
    before: dlq.Cursor | None = None

    def link(self, **extra: str) -> str:
        """The query string of this filter (and ``extra``): the next page, an action's way back."""
        return urlencode({**self.given, **extra})


def parse(params: Mapping[str, str], now_ms: int | None = None) -> Query:
    """Pure given ``now_ms``. Raises BadRequest with what is wrong."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    given = {name: params[name].strip() for name in FIELDS if params.get(name, "").strip()}
    only = filters(given, now, names=FIELDS[1:])
    only["origin_topic"] = given.get("topic")
    before = None
    if params.get("before"):
        try:
            before = dlq.parse_cursor(params["before"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return Query(given, only, before)


@dataclass(frozen=True)
class Action:
    """What a replay form asks for: the records at ``offsets``, or up to ``count`` that ``query`` matches."""

    query: Query
    offsets: list[dlq.Position]
    count: int | None
    confirmed: bool

    def replay_args(self) -> dict[str, Any]:
        return {"count": self.count, "offsets": self.offsets, **self.query.only}


def action(form: Mapping[str, Sequence[str]], now_ms: int | None = None) -> Action:
    """A replay form (``parse_qs`` form: a field may repeat): ``offset`` fields, or ``scope=matching`` (which
    ignores any ``offset``)."""
    last = {name: values[-1] for name, values in form.items() if values}
    query = parse(last, now_ms)
    matching = last.get("scope") == "matching"
    try:
        offsets = [] if matching else [dlq.parse_position(o) for o in form.get("offset", [])]
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not matching and not offsets:
        raise BadRequest("select records to replay, or replay all that match the filter")
    return Action(query, offsets, MATCHING_MAX if matching else None, last.get("confirm") == "yes")
