"""Pure: what one delivery attempt came to, and the rules that decide whether it is worth another.

``not_before`` is an absolute time in seconds on the clock ``now`` was read from (``time.time()`` in the
deliverers): the receiver asked, through ``Retry-After``, not to be called again before it. It is a minimum: the
schedule's next entry still applies when it is later.
"""

from __future__ import annotations

import email.utils
import http
from dataclasses import dataclass, replace

# Statuses a receiver sends when a later attempt may succeed (RFC 9110: 408 Request Timeout, 429 Too Many
# Requests); every 5xx is added by range.
RETRIED_4XX = frozenset({408, 429})
# Only these two carry a Retry-After worth honouring as a minimum (RFC 9110 §10.2.3; 3xx use it otherwise).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# An error text goes into DLQ headers and logs: long enough to read, short enough to never swamp them.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    """One delivery attempt: ``ok``; else ``retry`` (try again at the next entry) or not (to the DLQ at once)."""

    ok: bool
    retry: bool
    error: str | None
    not_before: float | None

    def about(self, where: str) -> Outcome:
        """The same outcome, its error text prefixed with where it happened (a URL without credentials)."""
        return self if self.error is None else replace(self, error=f"{where}: {self.error}")


DELIVERED = Outcome(ok=True, retry=False, error=None, not_before=None)


def retry(error: str, not_before: float | None = None) -> Outcome:
    return Outcome(ok=False, retry=True, error=error, not_before=not_before)


def give_up(error: str) -> Outcome:
    return Outcome(ok=False, retry=False, error=error, not_before=None)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """The absolute time a ``Retry-After`` value (delta-seconds or an HTTP-date) names; None if absent, unreadable
    or already past."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = int(text)
        return now + seconds if seconds > 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form without a zone means it too
        return None
    at = when.timestamp()
    return at if at > now else None


def status_text(status: int) -> str:
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def classify_http(status: int, retry_after: str | None, now: float) -> Outcome:
    """2xx delivered; 408, 429 and 5xx retried (429 and 503 no sooner than ``Retry-After``); anything else
    (other 4xx, and 1xx/3xx since redirects are not followed) is not worth another attempt."""
    if 200 <= status < 300:
        return DELIVERED
    text = status_text(status)
    if status in RETRIED_4XX or 500 <= status < 600:
        not_before = parse_retry_after(retry_after, now) if status in RETRY_AFTER_STATUSES else None
        return retry(text, not_before)
    if 300 <= status < 400:
        return give_up(f"{text} (redirects are not followed)")
    return give_up(text)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced and cut to MAX_ERROR_CHARS: exception texts may quote a request."""
    for secret in sorted(secrets, key=len, reverse=True):  # a URL holding a password first, then the password
        text = text.replace(secret, "***")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def timed_out(seconds: float, stage: str = "") -> Outcome:
    """No answer in time: the receiver may be slow or the network lossy, so a later attempt may succeed."""
    during = f" {stage}" if stage else ""
    return retry(f"timed out{during} after {seconds:g}s")


def connection_failed(exc: BaseException, secrets: tuple[str, ...] = ()) -> Outcome:
    """Refused, reset, unreachable, a broken exchange: the receiver may come back."""
    return retry(scrub(f"connection failed: {describe(exc)}", secrets))


def rejected(exc: BaseException, secrets: tuple[str, ...] = ()) -> Outcome:
    """A failure no later attempt can fix (a malformed URL, a body the service refuses, missing credentials)."""
    return give_up(scrub(describe(exc), secrets))


def unexpected(exc: BaseException, secrets: tuple[str, ...] = ()) -> Outcome:
    """A failure nothing above foresaw: retried, since the schedule bounds the attempts and the DLQ keeps the text."""
    return retry(scrub(f"unexpected {describe(exc)}", secrets))


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
