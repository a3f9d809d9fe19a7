"""The endpoint's JSON: ``json.dumps`` and a newline, as curl users and the existing clients read it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response


class JSONAnswer(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return (json.dumps(content) + "\n").encode()


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONAnswer:
    return JSONAnswer({"error": message}, status_code=status, headers=headers)
