"""Pure: a retry configuration, as Pretry's ``POST /v1/config`` takes it, checked field by field.

Pretry checks nothing; a configuration that cannot work (a schedule whose length is not ``maxRetry``, an
integration without a url) would fail only later, at delivery. Here it is refused at once, naming the field.
Extension: ``retryDelays`` (kretry durations: ``["500ms", "30s", "2h"]``) instead of ``retryHours``.

The stored form (the value in ``<prefix>.configs``) is the request as posted, normalised, with its secrets sealed
when a key is set (kretry.gateway.secrets); ``redacted`` is what GET answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kretry.durations import parse_duration
from kretry.errors import DurationError

HTTP, SQS = "HTTP", "SQS"
SECRET_FIELDS = {HTTP: ("password",), SQS: ("secretKey", "accessKey")}
REDACTED = "***"
MAX_DELAY = 365 * 86400.0


class Invalid(ValueError):
    """A configuration refused: ``field`` names where, as a path into the posted JSON."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Integration:
    kind: str  # HTTP or SQS
    url: str
    username: str | None = None
    password: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @property
    def name(self) -> str:
        """``HTTP http://host/path``: shown in outcomes and logs, never with credentials."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return f"{self.kind} {parts.scheme}://{host}{parts.path}"

    def __repr__(self) -> str:
        return f"Integration({self.name})"


@dataclass(frozen=True)
class Config:
    identifier: str
    max_retry: int
    delays: tuple[float, ...]  # seconds, one an attempt
    integrations: tuple[Integration, ...]
    stored: Mapping[str, Any]  # the normalised request, as kept in the configurations topic

    def delay(self, attempt: int) -> float:
        """The wait before the ``attempt``-th delivery (1-based)."""
        return self.delays[attempt - 1]

    def redacted(self) -> dict[str, Any]:
        return redacted(self.stored)


def with_secrets(stored: Mapping[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """Pure: a stored configuration with ``change`` applied to each secret of its integrations (a string)."""
    out = dict(stored)
    out["integrations"] = [
        {
            **i,
            "config": {
                k: (change(v) if k in SECRET_FIELDS.get(i.get("type", ""), ()) and isinstance(v, str) else v)
                for k, v in (i.get("config") or {}).items()
            },
        }
        for i in stored.get("integrations", [])
        if isinstance(i, dict)
    ]
    return out


def redacted(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: a stored configuration fit to show or answer: every secret ``***``, sealed or not."""
    return with_secrets(stored, lambda _secret: REDACTED)


def parse(raw: Any) -> Config:
    """A posted configuration, checked; raises Invalid naming the first field that cannot work."""
    if not isinstance(raw, dict):
        raise Invalid("body", "must be a JSON object")
    identifier = raw.get("identifier")
    if not isinstance(identifier, str) or not identifier.strip():
        raise Invalid("identifier", "must be a non-empty string")
    max_retry = raw.get("maxRetry")
    if isinstance(max_retry, bool) or not isinstance(max_retry, int) or max_retry < 1:
        raise Invalid("maxRetry", "must be an integer of at least 1")
    delays = _schedule(raw, max_retry)
    integrations = raw.get("integrations")
    if not isinstance(integrations, list) or not integrations:
        raise Invalid("integrations", "must be a non-empty list: where the event is delivered")
    parsed = tuple(_integration(i, item) for i, item in enumerate(integrations))
    stored: dict[str, Any] = {"identifier": identifier, "maxRetry": max_retry}
    for name in ("retryHours", "retryDelays"):
        if raw.get(name) is not None:
            stored[name] = raw[name]
    stored["integrations"] = [_stored(i) for i in parsed]
    return Config(identifier, max_retry, delays, parsed, stored)


def _schedule(raw: Mapping[str, Any], max_retry: int) -> tuple[float, ...]:
    # A null one is an absent one: a client that serialises every field sends the other as null.
    has_hours, has_delays = raw.get("retryHours") is not None, raw.get("retryDelays") is not None
    if has_hours == has_delays:
        raise Invalid("retryHours", "give exactly one of retryHours and retryDelays")
    name = "retryHours" if has_hours else "retryDelays"
    entries = raw[name]
    if not isinstance(entries, list):
        raise Invalid(name, "must be a list")
    if len(entries) != max_retry:
        raise Invalid(name, f"has {len(entries)} entries; maxRetry is {max_retry}: one entry a retry")
    out = []
    for i, entry in enumerate(entries):
        where = f"{name}[{i}]"
        if has_hours:
            if isinstance(entry, bool) or not isinstance(entry, (int, float)) or not math.isfinite(entry):
                raise Invalid(where, "must be a number of hours")
            seconds = float(entry) * 3600.0
        else:
            try:
                seconds = parse_duration(entry, what=where)
            except DurationError as exc:
                raise Invalid(where, str(exc).removeprefix(f"{where}: ")) from None
        if seconds < 0:
            raise Invalid(where, "must not be negative")
        if seconds > MAX_DELAY:
            raise Invalid(where, "must be at most 365 days")
        out.append(seconds)
    return tuple(out)


def _integration(index: int, item: Any) -> Integration:
    where = f"integrations[{index}]"
    if not isinstance(item, dict):
        raise Invalid(where, "must be an object with type and config")
    kind = item.get("type")
    if kind not in (HTTP, SQS):
        raise Invalid(f"{where}.type", f"{kind!r} is not a known type; use HTTP or SQS")
    conf = item.get("config")
    if not isinstance(conf, dict):
        raise Invalid(f"{where}.config", "must be an object")
    url = conf.get("url")
    if not isinstance(url, str) or not url.strip():
        raise Invalid(f"{where}.config.url", "is missing")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{where}.config.url", f"{parts.scheme or url!r}: must be an http:// or https:// URL")

    def text(name: str) -> str | None:
        value = conf.get(name)
        if value is not None and not isinstance(value, str):
            raise Invalid(f"{where}.config.{name}", "must be a string")
        return value

    if kind == HTTP:
        return Integration(HTTP, url, username=text("username"), password=text("password"))
    return Integration(
        SQS, url, region=text("region") or "us-east-1", access_key=text("accessKey"), secret_key=text("secretKey")
    )


def _stored(i: Integration) -> dict[str, Any]:
    if i.kind == HTTP:
        conf = {"url": i.url, "username": i.username, "password": i.password}
    else:
        conf = {"url": i.url, "region": i.region, "accessKey": i.access_key, "secretKey": i.secret_key}
    return {"type": i.kind, "config": conf}
