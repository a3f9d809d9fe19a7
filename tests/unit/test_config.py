from __future__ import annotations

from typing import Any

import pytest

from kretry import config
from kretry.errors import ConfigError
from kretry.stage import window
from kretry.topology import DEFAULT_DLQ_TOPIC


def _settings(**kwargs: Any) -> config.Settings:
    return config.load(kwargs, environ={})


def test_defaults() -> None:
    s = _settings()
    assert (s.bootstrap_servers, s.group_id, s.dlq_topic, s.kafka) == ("127.0.0.1:9092", None, DEFAULT_DLQ_TOPIC, {})


def test_environment_then_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_GROUP_ID", "from-env")
    monkeypatch.setenv("KRETRY_BOOTSTRAP_SERVERS", " env:9092 ")
    monkeypatch.setenv("KRETRY_KAFKA", '{"security.protocol": "SSL", "linger.ms": 5}')
    s = config.load({"group_id": None, "bootstrap_servers": "arg:9092", "kafka": None})
    assert (s.group_id, s.bootstrap_servers) == ("from-env", "arg:9092")
    assert s.kafka == {"security.protocol": "SSL", "linger.ms": 5}
    assert config.load({}).bootstrap_servers == "env:9092"
    # pydantic-settings merges the two dicts key by key: a given key wins, the environment's others stay.
    assert config.load({"kafka": {"linger.ms": 1}}).kafka == {"security.protocol": "SSL", "linger.ms": 1}


def test_values_come_from_the_given_environ() -> None:
    assert config.load({}, environ={"KRETRY_GROUP_ID": "svc"}).group_id == "svc"


@pytest.mark.parametrize("name", ["KRETRY_GROUPID", "KRETRY_DLQ", "kretry_group", "KRETRY_"])
def test_unknown_kretry_variable_is_an_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown setting {name};.*KRETRY_GROUP_ID"):
        config.load({}, environ={name: "x", "KRETRY_GROUP_ID": "svc", "OTHER": "y"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bootstrap_servers": "  "}, r"bootstrap_servers \(KRETRY_BOOTSTRAP_SERVERS\): .*host:port"),
        ({"group_id": " "}, r"group_id \(KRETRY_GROUP_ID\): .*must not be empty"),
        (
            {"kafka": {"group.id": "x", "enable.auto.commit": False}},
            r"kafka \(KRETRY_KAFKA\): .*enable.auto.commit, group.id",
        ),
        (
            {"kafka": {"enable.auto.offset.store": True}},
            r"kafka \(KRETRY_KAFKA\): .*enable.auto.offset.store is set by",
        ),
        ({"kafka": {"linger.ms": [1]}}, r"kafka.linger.ms.* \(KRETRY_KAFKA\)"),
        ({"retries": 3}, r"retries \(KRETRY_RETRIES\)"),
    ],
)
def test_bad_values_name_the_field_and_variable(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^bad setting: .*" + message):
        _settings(**overrides)


def test_bad_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_GROUP_ID", "")
    with pytest.raises(ConfigError, match=r"^bad setting: group_id \(KRETRY_GROUP_ID\): "):
        config.load({})


def test_bad_dlq_topic_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_DLQ_TOPIC", "a/b")
    with pytest.raises(ConfigError, match=r"dlq_topic.*'a/b' may contain only"):
        config.load({})


def test_bad_dlq_topic_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^bad setting: dlq_topic \(KRETRY_DLQ_TOPIC\): "):
        _settings(dlq_topic="dead letters")


def test_malformed_kafka_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_KAFKA", "security.protocol=SSL")
    with pytest.raises(ConfigError, match="KRETRY_KAFKA"):
        config.load({})


def test_empty_dlq_topic_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(dlq_topic="").dlq_topic is None
    monkeypatch.setenv("KRETRY_DLQ_TOPIC", "")
    assert config.load({}).dlq_topic is None


def test_settings_hide_kafka_from_repr() -> None:
    assert "hunter2" not in repr(_settings(kafka={"sasl.password": "hunter2"}))


def test_redact() -> None:
    conf = {
        "sasl.password": "p",
        "SSL.Key.Password": "p",
        "sasl.oauthbearer.client.secret": "s",
        "ssl.key.pem": "k",
        "sasl.oauthbearer.token.endpoint.url": "u",
        "sasl.username": "alice",
        "bootstrap.servers": "b:9092",
    }
    assert config.redact(conf) == {
        "sasl.password": "***",
        "SSL.Key.Password": "***",
        "sasl.oauthbearer.client.secret": "***",
        "ssl.key.pem": "***",
        "sasl.oauthbearer.token.endpoint.url": "***",
        "sasl.username": "alice",
        "bootstrap.servers": "b:9092",
    }


KAFKA = {
    "security.protocol": "SSL",
    "fetch.min.bytes": 10,
    "session.timeout.ms": 30000,
    "linger.ms": 20,
    "acks": "all",
    "enable.idempotence": False,
    "compression.type": "lz4",
}
CONSUMER_ONLY = {"fetch.min.bytes", "session.timeout.ms"}
PRODUCER_ONLY = {"linger.ms", "acks", "enable.idempotence", "compression.type"}


def test_consumer_conf_main_stage() -> None:
    conf = config.consumer_conf(_settings(kafka=KAFKA), "svc", main=True)
    assert not PRODUCER_ONLY & conf.keys()
    assert conf["fetch.min.bytes"] == 10
    assert conf["security.protocol"] == "SSL"
    assert conf["bootstrap.servers"] == "127.0.0.1:9092"
    assert conf["group.id"] == "svc"
    assert (conf["enable.auto.offset.store"], conf["enable.auto.commit"]) == (False, True)
    assert (conf["auto.offset.reset"], conf["auto.commit.interval.ms"]) == ("earliest", 250)
    assert "fetch.wait.max.ms" not in conf


@pytest.mark.parametrize("main", [True, False])
def test_auto_offset_reset(main: bool) -> None:
    s = _settings(kafka={"auto.offset.reset": "latest", "fetch.wait.max.ms": 200, "auto.commit.interval.ms": 5})
    conf = config.consumer_conf(s, "svc.orders_retry_1", main=main)
    assert conf["auto.offset.reset"] == ("latest" if main else "earliest")
    assert (conf["fetch.wait.max.ms"], conf["auto.commit.interval.ms"]) == (200, 5)


def test_retry_stage_bounds_the_fetch_wait() -> None:
    assert config.consumer_conf(_settings(), "g", main=False)["fetch.wait.max.ms"] == 25


def test_producer_conf() -> None:
    conf = config.producer_conf(_settings(kafka=KAFKA))
    assert not CONSUMER_ONLY & conf.keys()
    assert (conf["linger.ms"], conf["enable.idempotence"], conf["security.protocol"]) == (20, False, "SSL")
    assert config.producer_conf(_settings())["enable.idempotence"] is True


def test_admin_conf_gets_neither_side() -> None:
    assert config.admin_conf(_settings(kafka=KAFKA)) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SSL",
    }


def test_exactly_once_from_the_environment_turns_the_consumers_auto_commit_off() -> None:
    s = config.load({}, environ={"KRETRY_EXACTLY_ONCE": "true", "KRETRY_INSTANCE_ID": "pod-3"})
    assert (s.exactly_once, s.instance_id) == (True, "pod-3")
    conf = config.consumer_conf(s, "g", main=True)
    assert conf["enable.auto.commit"] is False
    assert conf["isolation.level"] == "read_committed"
    assert "transaction.timeout.ms" not in config.consumer_conf(
        _settings(kafka={"transaction.timeout.ms": 5}), "g", main=True
    )


def test_at_least_once_by_default_and_every_consumer_reads_committed() -> None:
    s = _settings()
    assert s.exactly_once is False
    for main in (True, False):
        conf = config.consumer_conf(s, "g", main=main)
        assert conf["enable.auto.commit"] is True
        assert conf["isolation.level"] == "read_committed"


def test_isolation_level_is_kretrys_own() -> None:
    with pytest.raises(ConfigError, match=r"isolation\.level"):
        _settings(kafka={"isolation.level": "read_uncommitted"})


def test_the_retry_window_defaults_are_the_windows_own_and_the_environment_sets_them() -> None:
    s = _settings()
    assert (s.retry_window_records, s.retry_window_mb * 2**20) == (window.MAX_RECORDS, window.MAX_TOTAL_BYTES)
    s = config.load({}, environ={"KRETRY_RETRY_WINDOW_RECORDS": "0", "KRETRY_RETRY_WINDOW_MB": "16"})
    assert (s.retry_window_records, s.retry_window_mb) == (0, 16.0)
    with pytest.raises(ConfigError, match="retry_window_records"):
        config.load({}, environ={"KRETRY_RETRY_WINDOW_RECORDS": "-1"})
    with pytest.raises(ConfigError, match="retry_window_mb"):
        config.load({}, environ={"KRETRY_RETRY_WINDOW_MB": "0"})
