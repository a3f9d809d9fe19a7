"""kretry.web without a broker: the pure guard and request parsing, and the status each exception gets at the edge."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from starlette.applications import Starlette

from kretry import Retrier, Worker, config, dlq
from kretry.errors import ConfigError, ReplayInProgress, TopologyError
from kretry.web import create_app, guard
from kretry.web.body import MAX_BODY, BadRequest, BodyTooLarge, declared_length
from kretry.web.deadset import peek_args, replay_args

LOCAL = guard.Policy(loopback=True)
JSON_POST = {"host": "127.0.0.1:8010", "content-type": "application/json"}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("", False),
        ("0.0.0.0", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert guard.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8010", "localhost"), ("[::1]:8010", "::1"), ("[::1]", "::1"), ("example.com", "example.com")],
)
def test_host_name(header: str, name: str) -> None:
    assert guard.host_name(header) == name


@pytest.mark.parametrize(
    ("policy", "method", "headers", "status"),
    [
        (LOCAL, "POST", JSON_POST, None),
        (LOCAL, "POST", {**JSON_POST, "content-type": "Application/JSON; charset=utf-8"}, None),
        (LOCAL, "POST", {**JSON_POST, "origin": "http://127.0.0.1:8010"}, None),
        (LOCAL, "GET", {"host": "[::1]:8010"}, None),
        (LOCAL, "POST", {**JSON_POST, "content-type": "text/plain"}, 415),
        (LOCAL, "POST", {"host": "localhost"}, 415),
        (LOCAL, "POST", {**JSON_POST, "content-type": "application/x-www-form-urlencoded"}, 415),
        (LOCAL, "POST", {**JSON_POST, "origin": "http://evil.example"}, 403),
        (LOCAL, "POST", {**JSON_POST, "origin": "http://127.0.0.1:9999"}, 403),
        (LOCAL, "GET", {"host": "127.0.0.1:8010", "origin": "null"}, 403),
        (LOCAL, "GET", {"host": "evil.example:8010"}, 403),
        (LOCAL, "GET", {}, 403),
        (guard.Policy(loopback=False), "GET", {"host": "worker:8010"}, 403),
        (guard.Policy(loopback=False, token="t0k"), "GET", {"host": "worker:8010"}, 401),
        (guard.Policy(loopback=False, token="t0k"), "GET", {"host": "w", "authorization": "Bearer t0k"}, None),
        (guard.Policy(loopback=False, token="t0k"), "GET", {"host": "w", "authorization": "bearer t0k"}, None),
        (guard.Policy(loopback=False, token="t0k"), "GET", {"host": "w", "authorization": "Bearer t0"}, 401),
        (guard.Policy(loopback=False, token="t0k"), "GET", {"host": "w", "authorization": "Basic t0k"}, 401),
        (guard.Policy(loopback=True, token="t0k"), "POST", JSON_POST, 401),
    ],
)
def test_refuse(policy: guard.Policy, method: str, headers: dict[str, str], status: int | None) -> None:
    refusal = guard.refuse(policy, method, headers)
    assert (refusal.status if refusal else None) == status
    if status == 401:
        assert refusal is not None
        assert refusal.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_token_is_not_in_the_policy_repr() -> None:
    assert "t0k" not in repr(guard.Policy(loopback=False, token="t0k"))


def test_peek_args() -> None:
    assert peek_args({}) == {"count": 10, "origin_topic": None}
    assert peek_args({"count": ["5", "7"], "topic": ["orders"]}) == {"count": 7, "origin_topic": "orders"}
    assert peek_args({"group": ["svc"]}) == {"count": 10, "origin_topic": None, "group": "svc"}
    with pytest.raises(BadRequest, match="unknown parameter bogus"):
        peek_args({"bogus": ["x"]})
    with pytest.raises(BadRequest, match="count must be between 1 and 1000, got 0"):
        peek_args({"count": ["0"]})


def test_replay_args_passes_group_only_when_given() -> None:
    assert "group" not in replay_args({"count": 1})
    assert replay_args({"count": 1, "group": "svc"})["group"] == "svc"
    for bad in ("", " ", 3, ["svc"]):
        with pytest.raises(BadRequest, match='"group" must be a non-empty string'):
            replay_args({"count": 1, "group": bad})


@pytest.mark.parametrize("header", ["-1", "+5", "1e3", "", " 5", "0x10", "5 5"])
def test_declared_length_refuses_what_is_not_a_length(header: str) -> None:
    with pytest.raises(BadRequest, match="bad Content-Length") as caught:
        declared_length(header)
    assert not isinstance(caught.value, BodyTooLarge)


def test_declared_length() -> None:
    assert declared_length(None) is None
    assert declared_length("0") == 0
    assert declared_length(str(MAX_BODY)) == MAX_BODY
    with pytest.raises(BodyTooLarge):
        declared_length(str(MAX_BODY + 1))


class Client:
    """The app in this process through httpx's ASGI transport.

    Not Starlette's TestClient: the installed Starlette deprecates it with httpx (it wants "httpx2"), and the
    tests turn warnings into errors.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            # raise_app_exceptions=False: a 500 is what the client sees, as from uvicorn.
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8010") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client() -> Client:
    # Nothing listens on port 1: these requests never reach Kafka, kretry.dlq is replaced where one would.
    retrier = Retrier("svc", bootstrap_servers="127.0.0.1:1")
    retrier.handler("orders")(lambda msg: None)
    return Client(create_app(Worker(retrier), retrier.settings, loopback=True))


def fail_with(exc: Exception) -> Any:
    def replay(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return replay


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (ReplayInProgress("a newer replay of kretry-dlq took over"), 409, "a newer replay of kretry-dlq took over"),
        (TopologyError("no DLQ"), 503, "TopologyError: no DLQ"),
        (ConfigError("bad"), 503, "ConfigError: bad"),
        (KafkaException(KafkaError(KafkaError._TIMED_OUT)), 503, "KafkaException: "),
        (RuntimeError("secret internals"), 500, "internal error"),
    ],
)
def test_replay_errors_get_their_status(
    client: Client, monkeypatch: pytest.MonkeyPatch, exc: Exception, status: int, message: str
) -> None:
    monkeypatch.setattr(dlq, "replay", fail_with(exc))
    answer = client.post("/v1/dead_set/replay", json={"count": 1})
    assert answer.status_code == status
    assert answer.json()["error"].startswith(message)


def test_group_reaches_dlq_only_when_given(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def peek(settings: Any, **kwargs: Any) -> list[Any]:
        calls.append(kwargs)
        return []

    monkeypatch.setattr(dlq, "peek", peek)
    assert client.get("/v1/dead_set?group=svc").json() == {"count": 0, "records": []}
    assert client.get("/v1/dead_set?topic=orders").status_code == 200
    assert calls == [{"count": 10, "origin_topic": None, "group": "svc"}, {"count": 10, "origin_topic": "orders"}]


def test_unknown_paths_and_wrong_methods_answer_json(client: Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.text) == (404, '{"error": "no such endpoint: GET /nope"}\n')
    wrong = client.get("/v1/dead_set/replay")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "use POST for /v1/dead_set/replay"})
    assert wrong.headers["Allow"] == "POST"
    assert client.request("DELETE", "/healthz").status_code == 405
    assert client.get("/healthz").text == '{"status": "alive"}\n'


def test_bad_bodies(client: Client) -> None:
    assert (
        client.post("/v1/dead_set/replay", content=b"{not json", headers={"Content-Type": "application/json"})
        .json()["error"]
        .startswith("the body is not JSON")
    )
    too_big = client.post("/v1/dead_set/replay", json={"count": 1, "topic": "x" * MAX_BODY})
    assert (too_big.status_code, too_big.json()) == (413, {"error": f"body larger than {MAX_BODY} bytes"})


def test_http_token_setting_is_secret_and_never_empty() -> None:
    settings = config.load({}, environ={"KRETRY_HTTP_TOKEN": "s3cret-token"})
    assert settings.http_token is not None
    assert settings.http_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(settings)
    assert config.load({}, environ={}).http_token is None
    with pytest.raises(ConfigError, match=r"http_token \(KRETRY_HTTP_TOKEN\): .*must not be empty"):
        config.load({}, environ={"KRETRY_HTTP_TOKEN": " "})
