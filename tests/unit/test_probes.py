"""The probes answer on any listener; the admin routes beside them only on loopback or with the token."""

from __future__ import annotations

import pytest

from kretry import DlqGuard, Retrier, Worker, config
from kretry.errors import ConfigError
from kretry.web.app import create_app
from tests.unit.test_web import Client

ADMIN = [
    ("GET", "/v1/dead_set"),
    ("POST", "/v1/dead_set/replay"),
    ("GET", "/v1/dlq_guard"),
    ("POST", "/v1/dlq_guard/reset"),
]


def _worker() -> Worker:
    # Nothing listens on port 1, and a worker never started asks the broker nothing.
    retrier = Retrier("svc", bootstrap_servers="127.0.0.1:1", dlq_guard=DlqGuard())
    retrier.handler("orders")(lambda msg: None)
    return Worker(retrier)


def test_a_non_loopback_listener_serves_the_probes_and_refuses_the_admin_routes() -> None:
    worker = _worker()
    client = Client(create_app(worker, worker.retrier.settings, loopback=False))
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").json() == {"ready": False, "reason": "stages not assigned yet"}
    for method, path in ADMIN:
        answer = client.request(method, path, json={"count": 1})
        assert answer.status_code == 403, (path, answer.text)
        assert "KRETRY_HTTP_TOKEN" in answer.json()["error"]
    assert worker.flood is not None
    assert worker.flood.tripped is None


def test_with_the_token_the_admin_routes_answer_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_HTTP_TOKEN", "s3cret-token")
    worker = _worker()
    client = Client(create_app(worker, worker.retrier.settings, loopback=False))
    assert client.get("/v1/dlq_guard").status_code == 401
    answer = client.get("/v1/dlq_guard", headers={"Authorization": "Bearer s3cret-token"})
    assert answer.json() == {"tripped": False, "reason": None}


def test_healthz_is_503_once_a_stage_failed() -> None:
    worker = _worker()
    client = Client(create_app(worker, worker.retrier.settings, loopback=True))
    worker.failure = RuntimeError("broker gone for good")
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "dead", "reason": "a stage failed: RuntimeError: broker gone for good"}


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [({}, 300.0), ({"KRETRY_LIVENESS_TIMEOUT": "90"}, 90.0), ({"KRETRY_LIVENESS_TIMEOUT": "2m"}, 120.0)],
)
def test_liveness_timeout_setting(environ: dict[str, str], seconds: float) -> None:
    assert config.load({}, environ=environ).liveness_timeout == seconds


@pytest.mark.parametrize("raw", ["0", "soon", "-1"])
def test_a_bad_liveness_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^bad setting: liveness_timeout \(KRETRY_LIVENESS_TIMEOUT\): "):
        config.load({}, environ={"KRETRY_LIVENESS_TIMEOUT": raw})
