"""What topics, dlq and stats print on stdout: an aligned table, or JSON lines under --json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json_lines(items: Sequence[Any]) -> None:
    for item in items:
        print(json.dumps(item))
