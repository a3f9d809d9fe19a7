"""GET /v1/dlq_guard (its state) and POST /v1/dlq_guard/reset (let records reach the DLQ again), guarded like the
dead set: an operator resets the flood guard once the bad deploy is rolled back."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kretry.web import guard
from kretry.web.responses import JSONAnswer, error
from kretry.worker import Worker


def routes(worker: Worker, policy: guard.Policy) -> list[Route]:
    def state() -> Response:
        flood = worker.flood
        if flood is None:
            return error(404, "no DLQ flood guard: Retrier(..., dlq_guard=kretry.DlqGuard(...)) sets one")
        return JSONAnswer({"tripped": flood.tripped is not None, "reason": flood.tripped})

    def show(request: Request) -> Response:
        guard.enforce(policy, request)
        return state()

    def reset(request: Request) -> Response:
        guard.enforce(policy, request)
        worker.reset_dlq_guard()
        return state()

    return [
        Route("/v1/dlq_guard", show, methods=["GET"]),
        Route("/v1/dlq_guard/reset", reset, methods=["POST"]),
    ]
