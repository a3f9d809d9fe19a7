"""Every Python snippet of the README registers without error: the docs cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kretry

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 8


def namespace_of(snippet: str) -> kretry.Retrier:
    """The Retrier a snippet leaves behind. A snippet without a Retrier of its own continues the README's first:
    ``from kretry import Message, Retrier`` and ``retrier = Retrier(group_id="orders-service")``."""
    namespace: dict[str, object] = {"kretry": kretry, "Message": kretry.Message}
    exec("from kretry import Retrier\nretrier = Retrier(group_id='orders-service')\n", namespace)
    exec(compile(snippet, "README.md", "exec"), namespace)
    registered = namespace["retrier"]
    assert isinstance(registered, kretry.Retrier)
    return registered


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.splitlines()[0][:40] for s in SNIPPETS])
def test_snippet_registers(snippet: str) -> None:
    assert namespace_of(snippet).handlers, "a snippet should register at least one handler"
