"""The gateway bench's delivery target, in a process of its own so that the bench's own work never delays what it
measures: each delivery's ``i`` and arrival time (``time.time()``) appended to FILE.
``python -m bench.apps.receiver PORT FILE``."""

from __future__ import annotations

import json
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app(path: str) -> Starlette:
    out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process; a line a delivery

    async def hook(request: Request) -> Response:
        at = time.time()
        body = json.loads(await request.body())
        out.write(f"{body.get('i', -1)} {at}\n")
        return Response(status_code=200)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


if __name__ == "__main__":
    uvicorn.run(app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", http="h11")
