"""Pure: who may use the console. A session cookie, a login with ``KRETRY_CONSOLE_TOKEN``, and a CSRF token per
session for every action.

The cookie is ``<id>.<authenticated>.<signature>``, signed with a key that lives as long as the process (a restart
ends every session). Every visitor gets one, logged in at once when no token is set: the CSRF token of each form
is the HMAC of the session id, so a page elsewhere can neither read it nor make one up. The cookie is HttpOnly and
SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

COOKIE = "kretry_console"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    id: str
    authenticated: bool


@dataclass(frozen=True)
class Keys:
    """The process's signing key and the token the login asks for (None: no login)."""

    token: str | None = field(default=None, repr=False)
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def new(self, authenticated: bool = False) -> Session:
        return Session(secrets.token_urlsafe(16), authenticated or self.token is None)

    def cookie(self, session: Session) -> str:
        body = f"{session.id}.{int(session.authenticated)}"
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is absent, altered or made up."""
        if not cookie or cookie.count(".") != 2:
            return None
        sid, flag, signature = cookie.split(".")
        if flag not in ("0", "1") or not hmac.compare_digest(signature, self._sign(f"{sid}.{flag}")):
            return None
        return Session(sid, flag == "1" or self.token is None)

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf:{session.id}")

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf(session).encode())

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.strip().encode(), self.token.encode())
