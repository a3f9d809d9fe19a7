"""Every Python snippet of the README registers without error: the docs cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.splitlines()[0][:40] for s in SNIPPETS])
def test_snippet_registers(snippet: str) -> None:
    import kretry

    namespace: dict[str, object] = {"kretry": kretry, "Message": kretry.Message}
    exec("from kretry import Retrier\nretrier = Retrier(group_id='readme')\n", namespace)
    exec(compile(snippet, "README.md", "exec"), namespace)
    registered = namespace["retrier"]
    assert isinstance(registered, kretry.Retrier)
    assert registered.handlers, "a snippet should register at least one handler"
