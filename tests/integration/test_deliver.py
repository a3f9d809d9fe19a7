"""The delivery edge against real receivers: an HTTP server on 127.0.0.1 and ElasticMQ, read back with boto3."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import kafka_local

from kretry.gateway.deliver import DELIVERED, Deliverer, HttpDeliverer, HttpTarget, Outcome, SqsDeliverer, SqsTarget
from tests.integration.receiver import Receiver, Reply
from tests.integration.sqs import ACCESS_KEY, REGION, SECRET_KEY, receive_all, sqs_client

T = TypeVar("T")

# Not ASCII, nested, with a space after each separator: what arrives must be these bytes, not a re-encoding.
BODY = json.dumps({"orderId": 7, "customer": "Zoë Ñúñez", "items": [{"sku": "A-1", "qty": 2}], "note": None}).encode()
PASSWORD = "pa55-w0rd-never-shown"


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


def once(target: HttpTarget | SqsTarget, body: bytes = BODY, timeout: float = 10.0, sqs: str | None = None) -> Outcome:
    """One delivery by a fresh Deliverer (``sqs``: its SQS endpoint), closed afterwards."""

    async def go() -> Outcome:
        deliverer = Deliverer(http_timeout=timeout, sqs_endpoint_url=sqs)
        try:
            return await deliverer.deliver(target, body)
        finally:
            await deliverer.aclose()

    return run(go)


def closed_port_url(path: str = "/") -> str:
    return f"http://127.0.0.1:{kafka_local.free_port()}{path}"


# --- HTTP ---------------------------------------------------------------------------------------------------------


def test_http_posts_the_body_byte_exact_as_json_with_basic_auth(receiver: Receiver) -> None:
    sent = time.time()
    outcome = once(HttpTarget(receiver.url("/hooks/orders?src=kretry"), username="bob", password=PASSWORD))

    assert outcome == DELIVERED
    [request] = receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hooks/orders?src=kretry")
    assert request.body == BODY
    assert json.loads(request.body) == json.loads(BODY)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("kretry-gateway/")
    assert sent <= request.at <= time.time()
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode()


def test_http_without_username_sends_no_authorization(receiver: Receiver) -> None:
    assert once(HttpTarget(receiver.url("/open"))) == DELIVERED
    [request] = receiver.wait_for(1)
    assert "authorization" not in request.headers
    assert request.body == BODY


def test_http_credentials_in_the_url_are_used_and_never_shown(receiver: Receiver) -> None:
    receiver.script(Reply(500))
    target = HttpTarget(receiver.url("/h", auth=f"carol:{PASSWORD}"))

    outcome = once(target)

    [request] = receiver.wait_for(1)
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"carol:{PASSWORD}".encode()).decode()
    assert outcome.retry
    assert outcome.error == f"POST http://127.0.0.1:{receiver.port}/h: HTTP 500 Internal Server Error"
    assert PASSWORD not in repr(target)
    assert PASSWORD not in repr(outcome)


def test_http_5xx_408_and_429_are_retried(receiver: Receiver) -> None:
    receiver.script(Reply(500), Reply(502), Reply(503), Reply(408), Reply(429))
    target = HttpTarget(receiver.url("/flaky"))

    outcomes = [once(target) for _ in range(5)]

    assert [(o.ok, o.retry, o.not_before) for o in outcomes] == [(False, True, None)] * 5
    assert [o.error for o in outcomes] == [
        f"POST {receiver.url('/flaky')}: HTTP {text}"
        for text in (
            "500 Internal Server Error",
            "502 Bad Gateway",
            "503 Service Unavailable",
            "408 Request Timeout",
            "429 Too Many Requests",
        )
    ]
    assert [r.body for r in receiver.wait_for(5)] == [BODY] * 5


def test_http_retry_after_is_honoured_as_a_minimum(receiver: Receiver) -> None:
    later = time.time() + 3600
    receiver.script(
        Reply(429, retry_after="120"),
        Reply(503, retry_after=email.utils.formatdate(later, usegmt=True)),
        Reply(500, retry_after="120"),  # only 429 and 503 make Retry-After a minimum
    )
    target = HttpTarget(receiver.url("/busy"))

    before = time.time()
    too_many, unavailable, failed = (once(target) for _ in range(3))
    after = time.time()

    assert too_many.retry
    assert too_many.not_before is not None
    assert before + 120 <= too_many.not_before <= after + 120
    assert unavailable.retry
    assert unavailable.not_before == float(int(later))  # an HTTP-date has whole seconds
    assert failed.retry
    assert failed.not_before is None


def test_http_4xx_and_redirects_are_not_retried(receiver: Receiver) -> None:
    receiver.script(Reply(404), Reply(400), Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    target = HttpTarget(receiver.url("/gone"))

    outcomes = [once(target) for _ in range(3)]

    assert [(o.ok, o.retry) for o in outcomes] == [(False, False)] * 3
    assert [o.error for o in outcomes] == [
        f"POST {receiver.url('/gone')}: HTTP 404 Not Found",
        f"POST {receiver.url('/gone')}: HTTP 400 Bad Request",
        f"POST {receiver.url('/gone')}: HTTP 302 Found (redirects are not followed)",
    ]
    assert [r.path for r in receiver.requests] == ["/gone"] * 3  # the redirect was not followed


def test_http_timeout_is_retried_and_says_so(receiver: Receiver) -> None:
    receiver.script(Reply(200, delay=10))
    target = HttpTarget(receiver.url("/slow"), username="bob", password=PASSWORD)

    outcome = once(target, timeout=0.5)

    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error == f"POST {receiver.url('/slow')}: timed out waiting for the answer after 0.5s"
    assert receiver.wait_for(1)[0].body == BODY


def test_http_connection_refused_is_retried_without_credentials_in_the_error() -> None:
    url = closed_port_url("/down")
    target = HttpTarget(url.replace("http://", f"http://dave:{PASSWORD}@"), username="dave", password=PASSWORD)

    outcome = once(target)

    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error is not None
    assert outcome.error.startswith(f"POST {url}: connection failed: ConnectError")
    assert PASSWORD not in outcome.error
    assert "dave" not in outcome.error


def test_http_malformed_url_is_not_retried() -> None:
    outcome = once(HttpTarget("ftp://files.example/drop"))
    assert (outcome.ok, outcome.retry) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith("POST ftp://files.example/drop: UnsupportedProtocol")


def test_http_one_client_serves_concurrent_deliveries(receiver: Receiver) -> None:
    async def go() -> list[Outcome]:
        deliverer = HttpDeliverer()
        try:
            bodies = [json.dumps({"n": n}).encode() for n in range(40)]
            return await asyncio.gather(*(deliverer.deliver(HttpTarget(receiver.url("/many")), b) for b in bodies))
        finally:
            await deliverer.aclose()

    assert run(go) == [DELIVERED] * 40
    assert sorted(json.loads(r.body)["n"] for r in receiver.wait_for(40)) == list(range(40))


# --- SQS ----------------------------------------------------------------------------------------------------------


def test_sqs_message_is_the_body(sqs_endpoint: str, sqs_queue: Callable[[], str]) -> None:
    queue = sqs_queue()

    outcome = once(SqsTarget(queue, REGION, ACCESS_KEY, SECRET_KEY), sqs=sqs_endpoint)

    assert outcome == DELIVERED
    [message] = receive_all(sqs_client(sqs_endpoint), queue, 1)
    assert message["Body"] == BODY.decode("utf-8")
    assert message["Body"].encode("utf-8") == BODY


def test_sqs_concurrent_sends_share_one_client(sqs_endpoint: str, sqs_queue: Callable[[], str]) -> None:
    queue = sqs_queue()
    bodies = [json.dumps({"n": n, "text": "ü" * n}).encode() for n in range(30)]

    async def go() -> list[Outcome]:
        deliverer = SqsDeliverer(endpoint_url=sqs_endpoint, threads=8)
        try:
            target = SqsTarget(queue, REGION, ACCESS_KEY, SECRET_KEY)
            return await asyncio.gather(*(deliverer.deliver(target, body) for body in bodies))
        finally:
            await deliverer.aclose()

    assert run(go) == [DELIVERED] * 30
    received = receive_all(sqs_client(sqs_endpoint), queue, 30)
    assert sorted(m["Body"].encode() for m in received) == sorted(bodies)


def test_sqs_missing_queue_is_not_retried(sqs_endpoint: str, sqs_queue: Callable[[], str]) -> None:
    missing = sqs_queue().rsplit("/", 1)[0] + "/no-such-queue-kretry"

    outcome = once(SqsTarget(missing, REGION, ACCESS_KEY, SECRET_KEY), sqs=sqs_endpoint)

    assert (outcome.ok, outcome.retry) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith(f"SQS {missing}: ")
    assert "NonExistentQueue" in outcome.error or "QueueDoesNotExist" in outcome.error
    assert SECRET_KEY not in outcome.error
    assert ACCESS_KEY not in outcome.error


def test_sqs_unreachable_endpoint_is_retried() -> None:
    endpoint = closed_port_url().rstrip("/")
    queue = f"{endpoint}/000000000000/orders"

    outcome = once(SqsTarget(queue, REGION, ACCESS_KEY, SECRET_KEY), sqs=endpoint, timeout=2)

    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error is not None
    assert outcome.error.startswith(f"SQS {queue}: connection failed: EndpointConnectionError")
    assert SECRET_KEY not in outcome.error


def test_sqs_body_that_is_not_utf8_is_not_retried(sqs_endpoint: str, sqs_queue: Callable[[], str]) -> None:
    queue = sqs_queue()
    outcome = once(SqsTarget(queue, REGION, ACCESS_KEY, SECRET_KEY), sqs=sqs_endpoint, body=b'{"a": "\xff"}')
    assert (outcome.ok, outcome.retry) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith(f"SQS {queue}: the body is not UTF-8 text")


# --- both ---------------------------------------------------------------------------------------------------------


def test_deliverer_dispatches_on_the_target(
    receiver: Receiver, sqs_endpoint: str, sqs_queue: Callable[[], str]
) -> None:
    queue = sqs_queue()
    receiver.script(Reply(503, retry_after="60"))
    targets: list[HttpTarget | SqsTarget] = [
        HttpTarget(receiver.url("/a"), username="u", password=PASSWORD),
        SqsTarget(queue, REGION, ACCESS_KEY, SECRET_KEY),
        HttpTarget(receiver.url("/b")),
    ]

    async def go() -> list[Outcome]:
        deliverer = Deliverer(http_timeout=5, sqs_endpoint_url=sqs_endpoint)
        try:
            return [await deliverer.deliver(target, BODY) for target in targets]
        finally:
            await deliverer.aclose()

    first, second, third = run(go)

    assert (first.retry, first.not_before is not None) == (True, True)
    assert second == DELIVERED
    assert third == DELIVERED
    assert [(r.path, r.body) for r in receiver.wait_for(2)] == [("/a", BODY), ("/b", BODY)]
    assert [m["Body"].encode() for m in receive_all(sqs_client(sqs_endpoint), queue, 1)] == [BODY]
