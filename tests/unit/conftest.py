"""Unit tests need no broker and must not depend on the developer's KRETRY_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_kretry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KRETRY_"):
            monkeypatch.delenv(name)
