"""``create_app(retrier, loopback=..., read_only=...)``: the console, one Starlette app per server.

GET  /                 the overview; GET /overview/rows is its table alone, which the page polls
GET  /dead             the dead set: newest first, a page at a time, filtered; the counts on top
GET  /dead/{p:o}       one DLQ record
POST /dead/replay      a dry run first (the confirmation page), then with confirm=yes the replay itself
GET  /tiers            what waits in each retry tier and until when; POST /tiers/command: retry now or kill,
                       a confirmation first (kretry.control, as ``kretry tier flush | kill``)
GET  /gateway          a kretry gateway's configurations, pending events and recent failures (--gateway-prefix)
GET  /login, POST /login, POST /logout

Every request is checked first: a rebound DNS name or a foreign Origin is refused (kretry.web.guard), a visitor
without a session gets one, and one not logged in (KRETRY_CONSOLE_TOKEN set) gets the login page. Every POST needs
the session's CSRF token (kretry.console.session); with ``read_only`` no action is shown, and none is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import jinja2
from confluent_kafka import KafkaException
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kretry import control, dlq
from kretry.console import query, show
from kretry.console.gateway import SCAN, GatewayReader
from kretry.console.overview import Overview
from kretry.console.session import COOKIE, CSRF_FIELD, Keys, Session
from kretry.console.tally import Tally
from kretry.console.tiers import WAITING, next_due, tiers
from kretry.errors import KretryError, ReplayInProgress
from kretry.retrier import Retrier
from kretry.web import guard
from kretry.web.body import BadRequest, read_body

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
OVERVIEW_HEADS = 20  # records a partition read for the overview's next due time


class Refused(Exception):
    """Answered with ``status`` and the error page saying ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoginNeeded(Exception):
    """Answered with the login page."""


def templates() -> Jinja2Templates:
    # Autoescape always, whatever a template's name: every value from a record or a header is shown as text.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kretry.console", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return Jinja2Templates(env=env)


def create_app(
    retrier: Retrier,
    *,
    loopback: bool,
    read_only: bool = False,
    keys: Keys | None = None,
    gateway_prefix: str | None = None,
) -> Starlette:
    """``loopback``: the server listens on a loopback address only; ``keys``: the session keys (a test's);
    ``gateway_prefix``: the kretry gateway whose page to show."""
    c = Console(retrier, loopback=loopback, read_only=read_only, keys=keys, gateway_prefix=gateway_prefix)
    return Starlette(
        routes=[
            Route("/", c.home, methods=["GET"]),
            Route("/overview/rows", c.rows, methods=["GET"]),
            Route("/dead", c.dead, methods=["GET"]),
            Route("/dead/replay", c.replay, methods=["POST"]),
            Route("/dead/{position}", c.record, methods=["GET"]),
            Route("/tiers", c.tiers, methods=["GET"]),
            Route("/tiers/command", c.command, methods=["POST"]),
            Route("/gateway", c.gateway, methods=["GET"]),
            Route("/login", c.login_page, methods=["GET"]),
            Route("/login", c.login, methods=["POST"]),
            Route("/logout", c.logout, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("kretry.console", "static")]), name="static"),
        ],
        exception_handlers={
            Refused: c.refused,
            BadRequest: c.refused,
            LoginNeeded: c.login_needed,
            KretryError: c.unavailable,
            KafkaException: c.unavailable,
        },
    )


class Console:
    """The pages and actions of one console. A sync page runs in Starlette's thread pool, off the event loop: it
    waits on the broker."""

    def __init__(
        self, retrier: Retrier, *, loopback: bool, read_only: bool, keys: Keys | None, gateway_prefix: str | None
    ) -> None:
        self.retrier = retrier
        self.settings = retrier.settings
        self.loopback = loopback
        self.read_only = read_only
        token = self.settings.console_token
        self.keys = keys or Keys(None if token is None else token.get_secret_value())
        self.pages = templates()
        # One long-lived DLQ reader for every page: a cluster's metadata costs more than a page of records.
        self.browser = dlq.Browser(self.settings) if self.settings.dlq_topic else None
        self.overview = Overview(retrier, self.browser.depth if self.browser is not None else None)
        self.tally = Tally(self.settings) if self.settings.dlq_topic else None
        self.gateway_reader = GatewayReader(self.settings, gateway_prefix) if gateway_prefix else None

    def session(self, request: Request) -> Session:
        refusal = guard.foreign(self.loopback, request.headers)
        if refusal is not None:
            raise Refused(refusal.status, refusal.message)
        found = self.keys.read(request.cookies.get(COOKIE))
        if found is None:
            found = request.state.new_session = self.keys.new()
        request.state.session = found
        if not found.authenticated and request.url.path != "/login":
            raise LoginNeeded
        return found

    def render(self, request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
        current: Session | None = getattr(request.state, "session", None)
        base = {
            "csrf": self.keys.csrf(current) if current is not None else "",
            "csrf_field": CSRF_FIELD,
            "read_only": self.read_only,
            "logged_in": self.keys.token is not None and current is not None and current.authenticated,
            "dlq_topic": self.settings.dlq_topic,
            "group": self.retrier.group_id,
            "gateway": self.gateway_reader is not None,
            "iso": dlq.iso,
        }
        response = self.pages.TemplateResponse(request, name, {**base, **context}, status_code=status)
        new: Session | None = getattr(request.state, "new_session", None)
        if new is not None:
            response.set_cookie(COOKIE, self.keys.cookie(new), httponly=True, samesite="strict")
        return response

    async def form(self, request: Request, *, action: bool = True) -> dict[str, list[str]]:
        """The POST's form, once its CSRF token is checked; ``action``: refused in read-only mode."""
        current = self.session(request)
        if guard.media_type(request.headers.get("content-type")) != FORM_MEDIA_TYPE:
            raise Refused(415, f"the form must be sent as {FORM_MEDIA_TYPE}")
        fields = parse_qs((await read_body(request)).decode("utf-8", errors="replace"), keep_blank_values=True)
        if not self.keys.csrf_ok(current, _last(fields, CSRF_FIELD)):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again")
        if action and self.read_only:
            raise Refused(403, "this console is read-only (--read-only): no action is served")
        return fields

    def home(self, request: Request) -> Response:
        self.session(request)
        if self.tally is not None:
            self.tally.counts()  # counting starts here, so that the dead set has its counts when opened
        return self.render(request, "overview.html", _overview(self.overview, self.retrier))

    def rows(self, request: Request) -> Response:
        self.session(request)
        return self.render(request, "_stages.html", _overview(self.overview, self.retrier))

    def dead(self, request: Request) -> Response:
        self.session(request)
        if self.browser is None:
            raise Refused(404, "this Retrier has no DLQ")
        q = query.parse(request.query_params)
        page = self.browser.newest(query.PAGE_SIZE, before=q.before, **q.only)
        depth = self.browser.depth()
        counts = self.tally.counts() if self.tally is not None else None
        listed = [(r, dlq.error_kind(r), _short(r.state.error)) for r in page.records]
        context = {"q": q, "page": page, "listed": listed, "depth": depth, "counts": counts}
        return self.render(request, "deadset.html", {**context, "cursor": dlq.format_cursor})

    def record(self, request: Request) -> Response:
        self.session(request)
        dlq_topic = self.settings.dlq_topic
        try:
            position = dlq.parse_position(request.path_params["position"])
        except ValueError as exc:
            raise Refused(404, str(exc)) from None
        found = self.browser.find(position) if self.browser is not None else None
        if found is None or dlq_topic is None:
            raise Refused(404, f"no DLQ record at {request.path_params['position']}")
        mask = self.retrier.mask
        context = {
            "r": found,
            "at": dlq.format_position(found.position),
            "value": show.value(found.value, mask),
            "headers": show.headers(found, mask),
            "path": show.path(found, dlq_topic, self.retrier.handlers),
            "kind": dlq.error_kind(found),
        }
        return self.render(request, "record.html", context)

    async def replay(self, request: Request) -> Response:
        act = query.action(await self.form(request))
        context: dict[str, Any] = {"act": act, "positions": [dlq.format_position(p) for p in act.offsets]}
        try:
            report = await run_in_threadpool(
                lambda: dlq.replay(self.settings, dry_run=not act.confirmed, **act.replay_args())
            )
        except ReplayInProgress as exc:
            return self.render(request, "result.html", {**context, "report": None, "busy": str(exc)}, status=409)
        if act.confirmed and self.browser is not None:
            await run_in_threadpool(self.browser.forget)  # a first replay creates the ledger: pages see it at once
        name = "result.html" if act.confirmed else "confirm.html"
        return self.render(request, name, {**context, "report": report, "busy": None, "at": dlq.format_position})

    def tiers(self, request: Request) -> Response:
        self.session(request)
        return self.render(request, "tiers.html", {"tiers": tiers(self.retrier), "shown": WAITING})

    async def command(self, request: Request) -> Response:
        fields = await self.form(request)
        topic, action = _last(fields, "topic") or "", _last(fields, "action") or ""
        if action not in (control.FLUSH, control.KILL):
            raise Refused(400, f"unknown action {action!r}: flush or kill")
        if topic not in {s.topic for s in self.retrier.stages() if s.attempt}:
            raise Refused(400, f"{topic!r} is not a retry tier of this Retrier")
        key = _last(fields, "key") or None
        reason = _last(fields, "reason") or "from the console"
        context = {"topic": topic, "action": action, "key": key, "reason": reason, "sent": None}
        if _last(fields, "confirm") != "yes":
            return self.render(request, "tier_confirm.html", context)
        sent = await run_in_threadpool(lambda: control.send(self.settings, action, topic, key=key, reason=reason))
        return self.render(request, "tier_confirm.html", {**context, "sent": sent})

    def gateway(self, request: Request) -> Response:
        self.session(request)
        if self.gateway_reader is None:
            raise Refused(404, "no gateway: start the console with --gateway-prefix PREFIX")
        look = self.gateway_reader.look()
        return self.render(request, "gateway.html", {"look": look, "scan": SCAN, "due_topic": look.prefix + ".due"})

    def login_page(self, request: Request) -> Response:
        self.session(request)
        return self.render(request, "login.html", {"wrong": False})

    async def login(self, request: Request) -> Response:
        fields = await self.form(request, action=False)
        if not self.keys.token_ok(_last(fields, "token")):
            return self.render(request, "login.html", {"wrong": True}, status=401)
        response = RedirectResponse("/", status_code=303)
        fresh = self.keys.cookie(self.keys.new(authenticated=True))
        response.set_cookie(COOKIE, fresh, httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        await self.form(request, action=False)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def refused(self, request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, Refused) else 400
        return self.render(request, "error.html", {"message": str(exc)}, status=status)

    async def login_needed(self, request: Request, exc: Exception) -> Response:
        return self.render(request, "login.html", {"wrong": False}, status=401)

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        return self.render(request, "error.html", {"message": f"{type(exc).__name__}: {exc}"}, status=503)


def _overview(overview: Overview, retrier: Retrier) -> dict[str, Any]:
    stages, dead = overview.look()
    # The first records of each partition only: tiers fill in due order but for RetryLater and replays.
    return {"stages": stages, "dead": dead, "next_due": next_due(tiers(retrier, OVERVIEW_HEADS))}


def _short(error: str | None, limit: int = 140) -> str:
    text = error or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last(fields: Mapping[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[-1] if values else None
