from __future__ import annotations

import email.utils
import types

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from kretry.gateway import deliver
from kretry.gateway.deliver import DELIVERED, HttpTarget, Outcome, SqsTarget, classify_http, parse_retry_after, safe_url
from kretry.gateway.deliver.outcome import MAX_ERROR_CHARS, connection_failed, scrub, timed_out
from kretry.gateway.deliver.sqs import classify_client_error, classify_exception

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "ok", "retry", "error"),
    [
        (200, True, False, None),
        (201, True, False, None),
        (204, True, False, None),
        (299, True, False, None),
        (100, False, False, "HTTP 100 Continue"),
        (301, False, False, "HTTP 301 Moved Permanently (redirects are not followed)"),
        (302, False, False, "HTTP 302 Found (redirects are not followed)"),
        (400, False, False, "HTTP 400 Bad Request"),
        (401, False, False, "HTTP 401 Unauthorized"),
        (403, False, False, "HTTP 403 Forbidden"),
        (404, False, False, "HTTP 404 Not Found"),
        (408, False, True, "HTTP 408 Request Timeout"),
        (409, False, False, "HTTP 409 Conflict"),
        (413, False, False, "HTTP 413 Request Entity Too Large"),
        (422, False, False, "HTTP 422 Unprocessable Entity"),
        (429, False, True, "HTTP 429 Too Many Requests"),
        (499, False, False, "HTTP 499"),
        (500, False, True, "HTTP 500 Internal Server Error"),
        (502, False, True, "HTTP 502 Bad Gateway"),
        (503, False, True, "HTTP 503 Service Unavailable"),
        (504, False, True, "HTTP 504 Gateway Timeout"),
        (599, False, True, "HTTP 599"),
        (600, False, False, "HTTP 600"),
    ],
)
def test_classify_http_by_status(status: int, ok: bool, retry: bool, error: str | None) -> None:
    assert classify_http(status, None, NOW) == Outcome(ok=ok, retry=retry, error=error, not_before=None)


@pytest.mark.parametrize(
    ("status", "retry_after", "not_before"),
    [
        (429, "120", NOW + 120),
        (503, " 7 ", NOW + 7),
        (503, "0", None),
        (429, email.utils.formatdate(NOW + 90, usegmt=True), NOW + 90),
        (503, email.utils.formatdate(NOW - 90, usegmt=True), None),  # already past: no minimum
        (429, "-5", None),
        (429, "1.5", None),
        (429, "soon", None),
        (429, "", None),
        (429, "Wed, 21 Oct 2015 07:28:00", None),  # a date without its zone is not an HTTP-date
        # Only 429 and 503 give Retry-After the meaning "not before"; elsewhere it is ignored.
        (500, "120", None),
        (408, "120", None),
        (200, "120", None),
        (404, "120", None),
    ],
)
def test_retry_after_is_a_minimum_for_429_and_503(status: int, retry_after: str, not_before: float | None) -> None:
    assert classify_http(status, retry_after, NOW).not_before == not_before


def test_retry_after_http_date_forms() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", NOW) == NOW + 120
    assert parse_retry_after("Tuesday, 14-Nov-23 22:15:20 GMT", NOW) == NOW + 120  # RFC 850, obsolete but valid
    assert parse_retry_after(None, NOW) is None


def test_about_prefixes_errors_only() -> None:
    assert DELIVERED.about("POST http://x/") is DELIVERED
    assert (
        classify_http(500, None, NOW).about("POST http://x/").error == "POST http://x/: HTTP 500 Internal Server Error"
    )


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://hooks.example/a?b=1", "https://hooks.example/a?b=1"),
        ("https://user:pw@hooks.example:8443/a?b=1#f", "https://hooks.example:8443/a?b=1#f"),
        ("http://user@hooks.example/", "http://hooks.example/"),
        ("http://u:p@[::1]:9000/x", "http://[::1]:9000/x"),
    ],
)
def test_safe_url_drops_credentials(url: str, safe: str) -> None:
    assert safe_url(url) == safe


def test_targets_repr_never_shows_secrets() -> None:
    http = HttpTarget("https://bob:url-pw@hooks.example/h", username="bob", password="s3cret-pw")
    sqs = SqsTarget("https://sqs.eu-west-1.amazonaws.com/1/q", "eu-west-1", access_key="AKIDSECRET", secret_key="shh")
    for text in (repr(http), str(http), repr(sqs), str(sqs), repr([http, sqs])):
        for secret in ("s3cret-pw", "url-pw", "AKIDSECRET", "shh"):
            assert secret not in text
    assert repr(http) == "HttpTarget(url='https://hooks.example/h', username='bob', password='***')"
    assert repr(HttpTarget("http://h/")) == "HttpTarget(url='http://h/', username=None, password=None)"
    assert "access_key='***', secret_key='***'" in repr(sqs)
    assert "access_key=None, secret_key=None" in repr(SqsTarget("u", "r"))


def test_scrub_removes_secrets_and_bounds_length() -> None:
    target = HttpTarget("http://bob:pw1@h/x", username=None, password="pw")
    assert scrub("to http://bob:pw1@h/x with pw failed", target.secrets()) == "to *** with *** failed"
    assert len(scrub("x" * 5000, ())) == MAX_ERROR_CHARS


def test_exception_helpers() -> None:
    assert timed_out(2.5, "connecting") == Outcome(False, True, "timed out connecting after 2.5s", None)
    refused = connection_failed(ConnectionRefusedError(111, "Connection refused for key k3y"), ("k3y",))
    assert refused.retry
    assert refused.error == "connection failed: ConnectionRefusedError: [Errno 111] Connection refused for key ***"


def client_error(code: str, status: int, message: str = "m") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "SendMessage",
    )


@pytest.mark.parametrize(
    ("code", "status", "retry"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", 400, False),
        ("QueueDoesNotExist", 400, False),
        ("AccessDenied", 403, False),
        ("InvalidClientTokenId", 403, False),
        ("InvalidParameterValue", 400, False),
        ("InvalidMessageContents", 400, False),
        ("ThrottlingException", 400, True),
        ("RequestThrottled", 403, True),
        ("KmsThrottled", 400, True),
        ("ServiceUnavailable", 503, True),
        ("InternalError", 500, True),
        ("Whatever", 502, True),
        ("Whatever", 429, True),
        ("Whatever", 408, True),
        ("Whatever", 400, False),
    ],
)
def test_sqs_client_errors(code: str, status: int, retry: bool) -> None:
    outcome = classify_client_error(client_error(code, status), ())
    assert (outcome.ok, outcome.retry) == (False, retry)
    assert outcome.error == f"{code} (HTTP {status}): m"


def test_sqs_errors_never_quote_keys() -> None:
    outcome = classify_client_error(
        client_error("SignatureDoesNotMatch", 403, "Credential=AKIDX/2024 s=SK"), ("AKIDX", "SK")
    )
    assert outcome.error == "SignatureDoesNotMatch (HTTP 403): Credential=***/2024 s=***"


@pytest.mark.parametrize(
    ("exc", "retry", "starts"),
    [
        (ConnectTimeoutError(endpoint_url="http://q"), True, "timed out connecting after 3s"),
        (ReadTimeoutError(endpoint_url="http://q"), True, "timed out waiting for the answer after 3s"),
        (EndpointConnectionError(endpoint_url="http://q"), True, "connection failed: EndpointConnectionError"),
        (NoCredentialsError(), False, "NoCredentialsError: Unable to locate credentials"),
        (ParamValidationError(report="bad"), False, "ParamValidationError"),
        (RuntimeError("boom"), True, "unexpected RuntimeError: boom"),
    ],
)
def test_sqs_exceptions(exc: Exception, retry: bool, starts: str) -> None:
    outcome = classify_exception(exc, 3.0)
    assert (outcome.ok, outcome.retry) == (False, retry)
    assert outcome.error is not None
    assert outcome.error.startswith(starts)


def test_deliver_exports_exactly_its_public_names() -> None:
    public = {n for n, v in vars(deliver).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert sorted(deliver.__all__) == sorted(public)
