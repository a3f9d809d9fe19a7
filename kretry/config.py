"""Settings: constructor arguments first, then ``KRETRY_*`` environment variables, then defaults.

A misspelt ``KRETRY_*`` variable is an error, not a silently ignored key. librdkafka settings (security, SASL,
tuning) pass through ``kafka`` unchanged, confluent-kafka's callables too (kretry.callbacks); their secrets are
never shown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kretry import callbacks
from kretry.durations import parse_duration
from kretry.errors import ConfigError, DurationError
from kretry.topology import DEFAULT_DLQ_TOPIC, validate_topic_name

ENV_PREFIX = "KRETRY_"
# Settings of kretry's other commands (``kretry gateway``, ``kretry console``): one environment may serve them all,
# so these are not unknown to ``kretry run``; each command checks its own.
OTHER_COMMANDS = ("GATEWAY_", "CONSOLE_")
DEFAULT_LIVENESS_TIMEOUT = 300.0
_SECRET_WORDS = ("password", "secret", "token", "key.pem", "private")

# Set by kretry because its guarantees rest on them; a user value for one of these is refused.
OWNED_CONSUMER_KEYS = frozenset({"enable.auto.offset.store", "enable.auto.commit", "group.id", "isolation.level"})

# librdkafka warns about a property meant for the other kind of client; each client gets only its own.
_CONSUMER_ONLY = (
    "fetch.",
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "auto.commit.interval.ms",
    "partition.assignment.strategy",
    "isolation.level",
    "queued.",
    "check.crcs",
    "enable.partition.eof",
    "consume.",
    "on_commit",
)
_PRODUCER_ONLY = (
    "acks",
    "request.required.acks",
    "linger.ms",
    "queue.buffering.",
    "batch.",
    "compression.",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "enable.idempotence",
    "retries",
    "message.send.max.retries",
    "partitioner",
    "transactional.id",
    "transaction.",
    "sticky.partitioning.",
    "on_delivery",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load() reads the environment itself, so that the mapping it is given is the only one read.
        return (init_settings,)

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str | None = None
    dlq_topic: str | None = DEFAULT_DLQ_TOPIC
    # Any librdkafka setting, e.g. {"security.protocol": "SASL_SSL", "sasl.password": "..."};
    # from the environment as JSON: KRETRY_KAFKA='{"security.protocol": "SASL_SSL"}'. Values are str, int, float or
    # bool, or for confluent-kafka's callback keys (oauth_cb, error_cb, ...) a callable given in code; checked
    # one by one in _kafka, so that a bad value is named by its key rather than by a dump of a type union.
    kafka: dict[str, Any] = Field(default_factory=dict, repr=False)
    # `kretry run --http-port`: the bearer token the dead-set routes ask for (kretry.web.guard); unset, they are
    # served on a loopback address only.
    http_token: SecretStr | None = None
    # `kretry console`: the token its login page asks for (kretry.console.session); unset, the console asks none and
    # serves a loopback address only.
    console_token: SecretStr | None = None
    # `kretry run --http-port`: /healthz answers 503 once a stage's loop has not come round for this long (a
    # handler stuck), so that the orchestrator restarts the process. Five minutes is librdkafka's default
    # max.poll.interval.ms, past which the group has given the stage's partitions away anyway.
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT
    # Each stage's forwards and offsets in one Kafka transaction per batch: no duplicate copies on the retry topics
    # or the DLQ (kretry.stage.txn). The handler's own side effects stay at-least-once.
    exactly_once: bool = False
    # Part of every transactional.id (exactly_once): unique among the service's live workers, the same for a worker
    # restarted in its place. Unset: hostname plus the lowest per-host slot free (kretry.instance).
    instance_id: str | None = None
    # A retry stage holds the records it fetched before their due time in memory, each handled when due whatever
    # its place in the partition (kretry.stage.window): at most this many a partition (0: none, every record waits
    # at the head of its partition) ...
    retry_window_records: int = Field(default=2_000, ge=0)  # window.MAX_RECORDS
    # ... and this many MiB a stage, a partition at most 8 of it (window.MAX_BYTES). Past either, the partition waits.
    retry_window_mb: float = Field(default=32.0, gt=0)  # window.MAX_TOTAL_BYTES

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name at least one host:port")
        return value.strip()

    @field_validator("group_id")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            validate_topic_name(value, what="dlq_topic")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("instance_id")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (unset it for hostname plus a per-host slot)")
        return value

    @field_validator("http_token", "console_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would let "Authorization: Bearer " in; unset the variable to have none.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it for no token)")
        return value

    @field_validator("liveness_timeout", mode="before")
    @classmethod
    def _liveness(cls, value: Any) -> float:
        # From the environment a bare number is seconds ("300"), as it is in code; "5m" works in both.
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        try:
            seconds = parse_duration(value, what="liveness_timeout")
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        if seconds <= 0:
            raise ValueError("must be longer than 0 s")
        return seconds

    @field_validator("kafka")
    @classmethod
    def _kafka(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = sorted(OWNED_CONSUMER_KEYS & value.keys())
        if owned:
            raise ValueError(f"{', '.join(owned)} is set by kretry itself and cannot be overridden")
        for key, item in value.items():
            problem = callbacks.problem(key, item)
            if problem is not None:
                raise PydanticCustomError("kafka_setting", "{problem}", {"key": key, "problem": problem})
        return value


S = TypeVar("S", bound=Settings)


def load(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``overrides`` (None means 'not given'), else the environment, else defaults."""
    return load_as(Settings, overrides, environ)


def load_as(model: type[S], overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> S:
    """``load`` for a subclass of Settings with a command's own fields (e.g. the gateway's ``gateway_*``)."""
    environ = os.environ if environ is None else environ
    known = {f"{ENV_PREFIX}{name}".upper() for name in model.model_fields}
    own = tuple(p for p in OTHER_COMMANDS if any(k.startswith(ENV_PREFIX + p) for k in known))
    others = tuple(ENV_PREFIX + p for p in OTHER_COMMANDS if p not in own)
    unknown = sorted(
        k
        for k in environ
        if k.upper().startswith(ENV_PREFIX) and k.upper() not in known and not k.upper().startswith(others)
    )
    if unknown:
        raise ConfigError(f"unknown setting {', '.join(unknown)}; kretry reads {', '.join(sorted(known))}")
    given: dict[str, Any] = {}
    for name in model.model_fields:
        raw = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if raw is not None:
            given[name] = _from_env(name, raw)
    for name, value in overrides.items():
        if value is None:
            continue
        # librdkafka settings merge key by key: the environment may carry credentials, the code its tuning.
        given[name] = {**given.get(name, {}), **value} if name == "kafka" else value
    try:
        return model(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _from_env(name: str, raw: str) -> Any:
    if name != "kafka":
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f'{ENV_PREFIX}KAFKA: not JSON ({exc}); write e.g. \'{{"security.protocol": "SSL"}}\''
        ) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        if "key" in err.get("ctx", {}):  # one librdkafka setting of `kafka`
            field = f"{field}.{err['ctx']['key']}"
        env = f" ({ENV_PREFIX}{str(err['loc'][0]).upper()})" if err["loc"] else ""
        lines.append(f"{field}{env}: {err['msg']}")
    return "bad setting: " + "; ".join(lines)


def redact(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A librdkafka config fit for a log line: secret values replaced, callables shown as ``<callable>``."""
    return {
        k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else callbacks.shown(k, v)) for k, v in conf.items()
    }


def _without(conf: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in conf.items() if not k.startswith(prefixes)}


def common_conf(settings: Settings) -> dict[str, Any]:
    return callbacks.guarded({"bootstrap.servers": settings.bootstrap_servers, **settings.kafka})


def admin_conf(settings: Settings) -> dict[str, Any]:
    return _without(_without(common_conf(settings), _CONSUMER_ONLY), _PRODUCER_ONLY)


def consumer_conf(settings: Settings, group: str, *, main: bool) -> dict[str, Any]:
    """A stage's consumer: offsets are stored by kretry only once a record is done, and committed from there."""
    conf = _without(common_conf(settings), _PRODUCER_ONLY)
    # What a kill -9 hands to the next owner again: the records stored since the last commit. Spring commits
    # after every poll; a quarter second costs a few small requests a second and bounds the duplicates.
    conf.setdefault("auto.commit.interval.ms", 250)
    # Once its local queue is full, librdkafka waits this long before fetching again (1 s by default), and a
    # stage that drained the queue sits idle meanwhile. Measured (make bench, 200k records): 170k -> ~580k
    # records/s on the main path.
    conf.setdefault("fetch.queue.backoff.ms", 100)
    if not main:
        # A retry topic holds only records that already failed once: always read it from its start.
        conf["auto.offset.reset"] = "earliest"
        # A resumed partition is fetched only once the outstanding long-poll fetch returns, so this bounds how
        # late a due record can be. Measured (make bench, 10k records, 2 s delay): p99 lateness 170 ms at 50 ms,
        # 25 ms here, 13 ms at 10 ms; an idle, unpaused retry consumer sends one fetch per this interval.
        conf.setdefault("fetch.wait.max.ms", 25)
    conf.setdefault("auto.offset.reset", "earliest")
    # Aborted copies of an exactly-once stage are never read; librdkafka's default, said out loud since kretry's
    # guarantee rests on it.
    conf["isolation.level"] = "read_committed"
    # Exactly-once: offsets are committed inside the stage's transactions, never by the consumer.
    auto_commit = not settings.exactly_once
    conf.update({"group.id": group, "enable.auto.offset.store": False, "enable.auto.commit": auto_commit})
    return conf


def producer_conf(settings: Settings) -> dict[str, Any]:
    """The forwarding producer: idempotent, so a resend after a lost acknowledgement is not a duplicate."""
    conf = _without(common_conf(settings), _CONSUMER_ONLY)
    conf.setdefault("enable.idempotence", True)
    # A topic the producer created by itself would get the broker's default width (one partition, say) and
    # retention: records sent to partitions it lacks are refused for ever. kretry creates its topics itself.
    conf["allow.auto.create.topics"] = False
    return conf
