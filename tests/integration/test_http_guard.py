"""The HTTP endpoint's defences, against the real server on a real socket: body limits, CSRF, DNS rebinding, token."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from kretry import Retrier, Worker
from kretry.web import Server
from tests.integration.kit import end_offsets, produce, unique
from tests.integration.test_dlq import dead

NewTopic = Callable[..., str]
# Long enough for a loaded machine, short enough that a server reading to EOF fails the test instead of hanging it.
ANSWER_TIMEOUT = 10.0


@contextmanager
def serving(bootstrap: str, dlq_topic: str | None = None, host: str = "127.0.0.1") -> Iterator[Server]:
    """The endpoint in this process, next to a worker that is never started: the dead-set routes need only settings."""
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=dlq_topic or unique("dlq"))
    retrier.handler(unique("t"))(lambda msg: None)
    server = Server(Worker(retrier), host, 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and keep the connection open: the server must answer without waiting for an EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # socket.timeout (a TimeoutError) when the server is still reading
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def post_head(port: int, *headers: str) -> bytes:
    lines = [
        "POST /v1/dead_set/replay HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_negative_content_length_is_refused_not_read_to_eof(bootstrap: str) -> None:
    with serving(bootstrap) as server:
        # count 0 is refused whatever happens: a server that reads the body anyway replays nothing.
        answer = raw_exchange(server.port, post_head(server.port, "Content-Length: -1") + b'{"count": 0}')
        assert status_of(answer) in (400, 411), answer
        answer = raw_exchange(server.port, post_head(server.port, "Content-Length: 1e3") + b'{"count": 0}')
        assert status_of(answer) in (400, 411), answer
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200


def test_a_body_over_64_kib_is_refused_with_413_before_it_is_read(bootstrap: str) -> None:
    with serving(bootstrap) as server:
        # Nothing of the announced body is sent: the answer cannot wait for it.
        answer = raw_exchange(server.port, post_head(server.port, f"Content-Length: {64 * 1024 + 1}"))
        assert status_of(answer) == 413, answer
        assert b'"error"' in answer or b"application/json" in answer


def test_a_chunked_body_is_cut_off_at_64_kib(bootstrap: str) -> None:
    with serving(bootstrap) as server:
        chunk = b"x" * 8192
        body = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 10  # 80 KiB and no last chunk: never ends
        answer = raw_exchange(server.port, post_head(server.port, "Transfer-Encoding: chunked") + body)
        assert status_of(answer) == 413, answer

        # A small chunked body is read and parsed like any other.
        small = b'{"count": 0}'
        request = post_head(server.port, "Transfer-Encoding: chunked", "Connection: close")
        answer = raw_exchange(server.port, request + f"{len(small):x}\r\n".encode() + small + b"\r\n0\r\n\r\n")
        assert status_of(answer) == 400, answer


def test_a_cross_origin_or_rebound_post_replays_nothing(bootstrap: str, new_topic: NewTopic) -> None:
    origin, dlq_topic = new_topic("origin"), new_topic("dlq")
    produce(bootstrap, dlq_topic, [(b"k0", b"v0", dead(origin, 0)), (b"k1", b"v1", dead(origin, 1))])
    with serving(bootstrap, dlq_topic) as server:
        url = f"http://127.0.0.1:{server.port}/v1/dead_set/replay"
        body = json.dumps({"count": 10})
        # What any web page can send without a CORS preflight: a "simple" text/plain POST.
        plain = httpx.post(url, content=body, headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
        assert plain.status_code == 403, plain.text
        # Some simple requests carry no Origin (a form posted from a file:// page in older browsers): the body type.
        plain = httpx.post(url, content=body, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415, plain.text
        no_type = httpx.post(url, content=body, headers={"Content-Type": ""})
        assert no_type.status_code == 415, no_type.text
        foreign = httpx.post(url, content=body, headers={"Content-Type": "application/json", "Origin": "null"})
        assert foreign.status_code == 403, foreign.text
        # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser calls it same-origin.
        rebound = {"Content-Type": "application/json", "Host": f"evil.example:{server.port}"}
        assert httpx.post(url, content=body, headers=rebound).status_code == 403
        peek = httpx.get(f"http://127.0.0.1:{server.port}/v1/dead_set", headers={"Host": "evil.example"})
        assert peek.status_code == 403
        assert "error" in peek.json()
        assert end_offsets(bootstrap, origin) == [0], "a refused request put records back"

        same = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8", "Origin": f"http://127.0.0.1:{server.port}"},
        )
        assert same.status_code == 200, same.text
        assert len(same.json()["replayed"]) == 2
        assert end_offsets(bootstrap, origin) == [2]
        for host in ("localhost", f"localhost:{server.port}", "[::1]:80", "127.0.0.1"):
            assert httpx.get(f"http://127.0.0.1:{server.port}/v1/dead_set", headers={"Host": host}).status_code == 200


def test_the_token_guards_the_dead_set_and_never_the_probes(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRETRY_HTTP_TOKEN", "s3cret-token")
    with serving(bootstrap, new_topic("dlq")) as server:
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/healthz", "/metrics"):
            assert httpx.get(base + path).status_code == 200
        assert httpx.get(base + "/readyz").status_code == 503  # open, and honest: the worker never started
        for auth in (None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "Bearer s3cret-token-and-more"):
            headers = {"Authorization": auth} if auth else {}
            answer = httpx.get(base + "/v1/dead_set", headers=headers)
            assert answer.status_code == 401, (auth, answer.text)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            replay = httpx.post(base + "/v1/dead_set/replay", json={"count": 1}, headers=headers)
            assert replay.status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert httpx.get(base + "/v1/dead_set", headers=good).json() == {"count": 0, "records": []}
        replay = httpx.post(base + "/v1/dead_set/replay", json={"count": 1}, headers=good)
        assert (replay.status_code, replay.json()["replayed"]) == (200, [])


def test_a_non_loopback_server_needs_a_token_for_the_dead_set(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq_topic = new_topic("dlq")
    with serving(bootstrap, dlq_topic, host="0.0.0.0") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/healthz").status_code == 200
        answer = httpx.get(base + "/v1/dead_set")
        assert answer.status_code == 403
        assert "KRETRY_HTTP_TOKEN" in answer.json()["error"]
        assert httpx.post(base + "/v1/dead_set/replay", json={"count": 1}).status_code == 403

    monkeypatch.setenv("KRETRY_HTTP_TOKEN", "s3cret-token")
    with serving(bootstrap, dlq_topic, host="0.0.0.0") as server:
        # Reached by any name once a token guards it: the Host check is for loopback listeners only.
        headers = {"Authorization": "Bearer s3cret-token", "Host": "worker-7.internal"}
        answer = httpx.get(f"http://127.0.0.1:{server.port}/v1/dead_set", headers=headers)
        assert answer.status_code == 200, answer.text
