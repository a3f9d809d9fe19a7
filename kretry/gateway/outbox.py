"""The gateway's one producer: idempotent, its acknowledgements served by a thread of its own, waited for either
by a batch (a loop thread) or by an awaitable (a request).

Awaitables are settled in bulk: what one poll of the producer acknowledged reaches each event loop in one
``call_soon_threadsafe``, not one each. Every such call writes to the loop's wake-up pipe and wakes it; one per
post cost more than the post's own work in the accept profile.

Nothing is answered or committed before the broker acknowledged what it rests on; a send the broker did not take
in time fails (``message.timeout.ms`` is the gateway's accept timeout), it never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from kretry.config import producer_conf
from kretry.gateway.settings import GatewaySettings

Headers = Sequence[tuple[str, bytes]]
# A loop waits this long for a batch's acknowledgements before it takes the batch as failed.
ACK_TIMEOUT = 30.0


class Batch:
    """Records sent together; ``wait`` returns once the broker answered for each of them."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._lock = threading.Lock()
        self._left = 0
        self._done = threading.Event()
        self._done.set()
        self.errors: list[str] = []

    def send(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers = (), partition: int = -1
    ) -> None:
        with self._lock:
            self._left += 1
            self._done.clear()
        try:
            self._outbox.produce(topic, key, value, headers, partition, self._acked)
        except (BufferError, KafkaException) as exc:  # a full queue or a refused record fails the batch
            self._acked(str(exc))

    def _acked(self, err: KafkaError | str | None, _msg: Any = None) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(err if isinstance(err, str) else err.str())
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def wait(self, timeout: float) -> bool:
        """True when every record was acknowledged in time."""
        return self._done.wait(timeout) and not self.errors


class Outbox:
    def __init__(self, settings: GatewaySettings) -> None:
        conf = producer_conf(settings)
        # A post waits on two acknowledged sends in a row: every millisecond of linger is one of latency. Under load
        # records still batch, behind the requests in flight.
        conf.setdefault("linger.ms", 0)
        conf.setdefault("message.timeout.ms", int(settings.gateway_accept_timeout * 1000))
        self._producer = Producer(conf)
        # Filled by the acknowledgement callbacks (and by a send refused at once, from the asker's thread).
        self._settled: deque[tuple[asyncio.Future[Any], Any]] = deque()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kretry-gateway-acks", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)
            self._wake()

    def settle_soon(self, future: asyncio.Future[Any], result: Any) -> None:
        """Set ``future``'s result on its own loop, with the others the same poll acknowledged (from any thread)."""
        self._settled.append((future, result))

    def _wake(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        while self._settled:
            future, result = self._settled.popleft()
            by_loop.setdefault(future.get_loop(), []).append((future, result))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: no one waits there any more
                loop.call_soon_threadsafe(_settle_all, items)

    def produce(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Headers,
        partition: int,
        on_delivery: Any,
    ) -> None:
        kwargs: dict[str, Any] = {"on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = list(headers)
        if partition >= 0:
            kwargs["partition"] = partition
        self._producer.produce(topic, value=value, key=key, **kwargs)

    def batch(self) -> Batch:
        return Batch(self)

    async def send(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers = (), partition: int = -1
    ) -> None:
        """Send one record and wait for the broker to take it; raises OSError when it did not."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def acked(err: KafkaError | None, _msg: Any) -> None:
            self.settle_soon(future, None if err is None else err.str())

        try:
            self.produce(topic, key, value, headers, partition, acked)
        except BufferError as exc:
            raise OSError(f"producer queue full: {exc}") from None
        error = await future
        if error is not None:
            raise OSError(error)

    def send_nowait(self, topic: str, key: bytes | str | None, value: bytes | None, partition: int = -1) -> None:
        """A record nothing waits for (a reply: the asker gives up in time without it)."""
        with contextlib.suppress(BufferError):
            self.produce(topic, key, value, (), partition, None)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued; the number of records left unacknowledged."""
        left: int = self._producer.flush(timeout)
        self._stopping.set()
        self._thread.join(2)
        self._wake()
        return left


def _settle_all(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in items:
        if not future.done():
            future.set_result(result)
