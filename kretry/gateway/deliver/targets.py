"""Pure: where a delivery goes. A target may be logged, so its repr never shows a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def safe_url(url: str) -> str:
    """``url`` without the ``user:password@`` part, for logs and error texts."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal lost its brackets in hostname
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _hide(secret: str | None) -> str:
    return "None" if secret is None else repr(REDACTED)


@dataclass(frozen=True, repr=False)
class HttpTarget:
    """An HTTP endpoint the event is POSTed to, with basic auth when ``username`` is set."""

    url: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"HttpTarget(url={safe_url(self.url)!r}, username={self.username!r}, password={_hide(self.password)})"

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error text: the password, and the URL with its credentials."""
        return tuple(s for s in (self.password, self.url if safe_url(self.url) != self.url else None) if s)


@dataclass(frozen=True, repr=False)
class SqsTarget:
    """An SQS queue (its URL) the event is sent to; without keys boto3's default credential chain applies."""

    url: str
    region: str
    access_key: str | None = None
    secret_key: str | None = None

    def __repr__(self) -> str:
        return (
            f"SqsTarget(url={safe_url(self.url)!r}, region={self.region!r}, "
            f"access_key={_hide(self.access_key)}, secret_key={_hide(self.secret_key)})"
        )

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error text: both keys."""
        return tuple(s for s in (self.access_key, self.secret_key) if s)


Target: TypeAlias = "HttpTarget | SqsTarget"
