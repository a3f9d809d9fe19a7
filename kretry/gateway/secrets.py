"""Integration secrets at rest: with ``KRETRY_GATEWAY_SECRET_KEY`` set, the passwords and SQS keys of a
configuration are sealed before it is written to the configurations topic, and opened when it is read back.

Without a key they are stored as posted (the topic's ACLs are what protects them); either way they are never
logged and never answered (kretry.gateway.configs.Config.redacted).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from kretry.gateway.configs import with_secrets

SEALED = "sealed:v1:"


class SecretKeyMissing(ValueError):
    """A sealed secret read without the key (or with another one)."""


class Sealer:
    """AES-256-GCM (the ``cryptography`` package), its key the SHA-256 of the secret key; a fresh nonce a value."""

    def __init__(self, key: SecretStr | None) -> None:
        raw = key.get_secret_value().encode() if key is not None else None
        self._aead = AESGCM(hashlib.sha256(raw).digest()) if raw else None

    def seal(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return with_secrets(stored, self._seal_one)

    def unseal(self, stored: dict[str, Any]) -> dict[str, Any]:
        return with_secrets(stored, self._open_one)

    def _seal_one(self, value: str) -> str:
        if self._aead is None:
            return value
        nonce = os.urandom(12)
        return SEALED + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, value.encode(), None)).decode()

    def _open_one(self, value: str) -> str:
        if not value.startswith(SEALED):
            return value
        if self._aead is None:
            raise SecretKeyMissing("a sealed secret, and KRETRY_GATEWAY_SECRET_KEY is not set")
        raw = base64.urlsafe_b64decode(value[len(SEALED) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag:
            raise SecretKeyMissing("a sealed secret that this KRETRY_GATEWAY_SECRET_KEY does not open") from None
