"""Callables among the librdkafka settings: accepted from code, refused from the environment, shown as <callable>."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from structlog.testing import capture_logs

from kretry import Retrier, callbacks, config
from kretry.errors import ConfigError

# An OAUTHBEARER client asks its token provider for a token when it is made, before it connects to anything.
OAUTH = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.config": "c"}


class TokenProvider:
    """The shape of aws-msk-iam-sasl-signer's use: ``oauth_cb(config_str) -> (token, expiry in epoch seconds)``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, oauth_config: str) -> tuple[str, float]:
        self.calls.append(oauth_config)
        return "a-token", time.time() + 3600


def test_oauth_cb_is_accepted_and_carried_to_every_client_conf() -> None:
    provider = TokenProvider()
    retrier = Retrier(group_id="svc", kafka={"oauth_cb": provider, **OAUTH})
    settings = retrier.settings
    assert settings.kafka["oauth_cb"] is provider
    for conf in (
        config.producer_conf(settings),
        config.consumer_conf(settings, "svc", main=True),
        config.consumer_conf(settings, "svc.t_retry_1", main=False),
        config.admin_conf(settings),
    ):
        assert conf["oauth_cb"] is provider


def test_the_token_provider_reaches_the_client() -> None:
    provider = TokenProvider()
    settings = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", kafka={"oauth_cb": provider, **OAUTH}).settings
    Producer(config.producer_conf(settings)).flush(0)
    assert provider.calls == ["c"]


def test_callables_from_the_code_merge_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_KAFKA", '{"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}')
    provider = TokenProvider()
    kafka = Retrier(group_id="svc", kafka={"oauth_cb": provider}).settings.kafka
    assert kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "oauth_cb": provider}


def test_each_client_gets_only_its_own_callbacks() -> None:
    calls: list[tuple[Any, ...]] = []

    def cb(*args: Any) -> None:
        calls.append(args)

    settings = config.load({"kafka": {"on_commit": cb, "on_delivery": cb, "stats_cb": cb}}, environ={})
    assert "on_delivery" not in config.consumer_conf(settings, "svc", main=True)
    assert "on_commit" not in config.producer_conf(settings)
    assert {"on_commit", "on_delivery"}.isdisjoint(config.admin_conf(settings))
    config.admin_conf(settings)["stats_cb"]("{}")
    assert calls == [("{}",)]


def test_a_user_callback_that_raises_never_raises_into_kretry() -> None:
    def error_cb(err: Any) -> None:
        raise RuntimeError("a user's bug")

    settings = config.load({"kafka": {"error_cb": error_cb}}, environ={})
    for conf in (config.admin_conf(settings), config.producer_conf(settings)):
        conf["error_cb"]("an error")  # logged, not raised: poll() would re-raise it out of kretry's own calls


def test_a_logger_is_accepted_for_logger() -> None:
    logger = logging.getLogger("kafka-client")
    assert config.load({"kafka": {"logger": logger}}, environ={}).kafka["logger"] is logger


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"oauth_cb": "mymodule.token"}, r"kafka.oauth_cb \(KRETRY_KAFKA\): takes a callable, got str"),
        ({"logger": print}, r"kafka.logger \(KRETRY_KAFKA\): takes a logging.Logger"),
        ({"sasl.password": lambda: "x"}, r"kafka.sasl.password \(KRETRY_KAFKA\): a callable is accepted only for"),
        ({"linger.ms": None}, r"kafka.linger.ms \(KRETRY_KAFKA\): a librdkafka setting is a string, a number"),
    ],
)
def test_a_bad_value_names_its_key_in_one_line(kafka: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^bad setting: " + message) as caught:
        config.load({"kafka": kafka}, environ={})
    text = str(caught.value)
    # One problem, not a dump of each type a union holds.
    assert text.count("(KRETRY_KAFKA)") == 1
    assert "Input should be" not in text


def test_a_callback_key_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"kafka.error_cb \(KRETRY_KAFKA\): takes a callable.*environment"):
        config.load({}, environ={"KRETRY_KAFKA": '{"error_cb": "handler"}'})


def test_redact_shows_callables_as_such() -> None:
    provider = TokenProvider()
    shown = config.redact({"oauth_cb": provider, "stats_cb": print, "logger": logging.getLogger("x"), "acks": "all"})
    assert shown == {"oauth_cb": "<callable>", "stats_cb": "<callable>", "logger": "<callable>", "acks": "all"}
    assert "TokenProvider" not in repr(config.load({"kafka": {"oauth_cb": provider}}, environ={}))


def _error(code: int) -> KafkaError:
    return KafkaError(code, "broker down")


def test_with_error_cb_calls_the_stage_then_the_user() -> None:
    calls: list[tuple[str, int]] = []
    conf = callbacks.with_error_cb(
        {"acks": "all", "error_cb": lambda err: calls.append(("user", err.code()))},
        lambda err: calls.append(("stage", err.code())),
    )
    conf["error_cb"](_error(KafkaError._TRANSPORT))
    assert calls == [("stage", KafkaError._TRANSPORT), ("user", KafkaError._TRANSPORT)]
    assert conf["acks"] == "all"


def test_with_error_cb_without_a_user_callback_is_the_stage_s_own() -> None:
    def own(err: KafkaError) -> None:
        pass

    assert callbacks.with_error_cb({"acks": "all"}, own) == {"acks": "all", "error_cb": own}


def test_a_user_error_cb_that_raises_never_stops_the_stage_s() -> None:
    seen: list[KafkaError] = []

    def broken(err: KafkaError) -> None:
        raise RuntimeError("user bug")

    conf = callbacks.with_error_cb({"error_cb": broken}, seen.append)
    with capture_logs() as logs:
        conf["error_cb"](_error(KafkaError._ALL_BROKERS_DOWN))
    assert [e.code() for e in seen] == [KafkaError._ALL_BROKERS_DOWN]
    assert [(e["log_level"], e["error"]) for e in logs] == [("warning", "RuntimeError: user bug")]


def test_with_error_cb_on_a_real_client() -> None:
    """librdkafka calls the combined callback: both hear that nothing listens on the port."""
    stage: list[KafkaError] = []
    user = threading.Event()
    conf = callbacks.with_error_cb(
        {"bootstrap.servers": "127.0.0.1:1", "error_cb": lambda err: user.set()}, stage.append
    )
    producer = Producer(conf)
    deadline = time.monotonic() + 10
    while not user.is_set() and time.monotonic() < deadline:
        producer.poll(0.1)
    assert user.is_set()
    assert stage
