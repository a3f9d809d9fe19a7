"""The gateway bench's baseline: the least a durable accept can do. One Starlette route under uvicorn (as the
gateway), which produces the posted body to a topic and answers 200 once the broker acknowledged it: no count,
no owner, no schedule. ``python -m bench.apps.bare_accept PORT TOPIC``."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import uvicorn
from confluent_kafka import Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.common import BOOTSTRAP


def app(topic: str) -> Starlette:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0, "enable.idempotence": True})

    def serve() -> None:
        while True:
            producer.poll(0.05)

    threading.Thread(target=serve, daemon=True).start()

    async def accept(request: Request) -> PlainTextResponse:
        body = await request.body()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        producer.produce(topic, body, on_delivery=lambda err, _m: loop.call_soon_threadsafe(done.set_result, err))
        err = await done
        return PlainTextResponse("accepted" if err is None else "no", status_code=200 if err is None else 503)

    return Starlette(routes=[Route("/v1/event", accept, methods=["POST"])])


if __name__ == "__main__":
    # The same parser and event loop as the gateway (kretry.web.server, fast=True).
    uvicorn.run(
        app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", http="httptools", loop="uvloop"
    )
