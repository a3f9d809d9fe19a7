"""SQS delivery: SendMessage of the event's JSON text to a queue URL with boto3, in threads of our own.

boto3 is blocking, so each send runs in a small thread pool owned by the deliverer (not asyncio's default
executor, which other parts of a service share). boto3 clients are thread-safe and costly to build (tens of
milliseconds), so there is one per (region, keys, endpoint), built once under a lock. botocore's own retries are
off: the gateway's schedule is the one retry policy, and one attempt keeps the timeout meaningful.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from kretry.gateway.deliver.outcome import (
    DELIVERED,
    RETRIED_4XX,
    Outcome,
    connection_failed,
    give_up,
    rejected,
    retry,
    scrub,
    timed_out,
    unexpected,
)
from kretry.gateway.deliver.targets import SqsTarget, safe_url

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DEFAULT_TIMEOUT = 10.0
DEFAULT_THREADS = 16

# Error codes that say "not now" rather than "never" (botocore's throttling and transient codes, and SQS's KMS
# throttling); every 5xx, 408 and 429 are retried by status besides.
RETRIED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)

# Failures of the configuration or of the request itself: the same send would fail the same way later.
_NEVER = (NoCredentialsError, PartialCredentialsError, NoRegionError, ParamValidationError, ValueError)

ClientKey = tuple[str, "str | None", "str | None", "str | None"]


def classify_client_error(exc: ClientError, secrets: tuple[str, ...] = ()) -> Outcome:
    """An error answer of the SQS API: throttling and server-side trouble retried, client errors (a missing queue,
    access denied, an invalid parameter or body) not."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "") or "error"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    text = scrub(f"{code} (HTTP {status}): {error.get('Message', '')}".rstrip(": "), secrets)
    if code in RETRIED_CODES or status in RETRIED_4XX or status >= 500:
        return retry(text)
    return give_up(text)


def classify_exception(exc: Exception, timeout: float, secrets: tuple[str, ...] = ()) -> Outcome:
    """Any exception of a send, as an Outcome."""
    if isinstance(exc, ClientError):
        return classify_client_error(exc, secrets)
    if isinstance(exc, ConnectTimeoutError):
        return timed_out(timeout, "connecting")
    if isinstance(exc, ReadTimeoutError):
        return timed_out(timeout, "waiting for the answer")
    if isinstance(exc, (BotoConnectionError, HTTPClientError, CredentialRetrievalError)):
        return connection_failed(exc, secrets)
    if isinstance(exc, _NEVER):
        return rejected(exc, secrets)
    return unexpected(exc, secrets)


def md5_hex(text: str) -> str:
    # SQS echoes the body's MD5 to let the sender check the body arrived intact; not a security use.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class SqsDeliverer:
    """``SendMessage`` with the target's region and keys; ``endpoint_url`` points every send at an SQS-compatible
    server (ElasticMQ) instead of AWS."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self._config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=threads,
        )
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kretry-sqs")
        self._clients: dict[ClientKey, SQSClient] = {}
        self._lock = threading.Lock()

    async def deliver(self, target: SqsTarget, body: bytes) -> Outcome:
        """Send ``body``, which must be UTF-8 text (SQS carries text), as the message body, unchanged."""
        where = f"SQS {safe_url(target.url)}"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return give_up(f"the body is not UTF-8 text: {exc}").about(where)
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(self._executor, self._send, target, text)
        return outcome.about(where)

    def _send(self, target: SqsTarget, text: str) -> Outcome:
        try:
            sent = self._client(target).send_message(QueueUrl=target.url, MessageBody=text)
        except Exception as exc:  # the contract: a delivery failure is an Outcome, never an exception
            return classify_exception(exc, self.timeout, target.secrets())
        if sent.get("MD5OfMessageBody", md5_hex(text)) != md5_hex(text):
            return retry("the queue acknowledged a body other than the one sent (MD5 mismatch)")
        return DELIVERED

    def _client(self, target: SqsTarget) -> SQSClient:
        key: ClientKey = (target.region, target.access_key, target.secret_key, self.endpoint_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                # A session of its own: boto3's default session is not safe to share between threads.
                client = boto3.session.Session().client(
                    "sqs",
                    region_name=target.region,
                    aws_access_key_id=target.access_key,
                    aws_secret_access_key=target.secret_key,
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
                self._clients[key] = client
            return client

    async def aclose(self) -> None:
        """Wait for sends under way, then close every client's connections."""
        await asyncio.to_thread(self._executor.shutdown, True)
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
