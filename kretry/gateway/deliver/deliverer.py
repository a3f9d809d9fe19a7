"""One deliverer for every kind of target: HTTP and SQS, dispatched on the target's type."""

from __future__ import annotations

from kretry.gateway.deliver.http import DEFAULT_TIMEOUT, HttpDeliverer
from kretry.gateway.deliver.outcome import Outcome
from kretry.gateway.deliver.sqs import SqsDeliverer
from kretry.gateway.deliver.targets import HttpTarget, SqsTarget


class Deliverer:
    """Owns an HttpDeliverer and an SqsDeliverer; ``aclose()`` closes both. ``sqs_timeout`` defaults to
    ``http_timeout``."""

    def __init__(
        self,
        http_timeout: float = DEFAULT_TIMEOUT,
        sqs_endpoint_url: str | None = None,
        sqs_timeout: float | None = None,
    ) -> None:
        self.http = HttpDeliverer(timeout=http_timeout)
        self.sqs = SqsDeliverer(
            endpoint_url=sqs_endpoint_url, timeout=http_timeout if sqs_timeout is None else sqs_timeout
        )

    async def deliver(self, target: HttpTarget | SqsTarget, body: bytes) -> Outcome:
        if isinstance(target, HttpTarget):
            return await self.http.deliver(target, body)
        return await self.sqs.deliver(target, body)

    async def aclose(self) -> None:
        try:
            await self.http.aclose()
        finally:
            await self.sqs.aclose()
