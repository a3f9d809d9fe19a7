"""The gateway's settings: kretry's (``KRETRY_BOOTSTRAP_SERVERS``, ``KRETRY_KAFKA``, ``KRETRY_DLQ_TOPIC``, ...) and its
own, ``KRETRY_GATEWAY_*``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from kretry.config import Settings
from kretry.durations import parse_duration
from kretry.errors import ConfigError, DurationError
from kretry.topology import validate_topic_name

DEFAULT_PREFIX = "kretry-gateway"


class GatewaySettings(Settings):
    # Every topic and consumer group of the gateway starts with this: two gateways on one cluster need two prefixes.
    gateway_prefix: str = DEFAULT_PREFIX
    # Partitions of each gateway topic: the most instances that share one kind of work.
    gateway_partitions: int = Field(default=6, ge=1, le=1000)
    # ``Authorization: Bearer <token>`` on every API route (the probes excepted); unset, the API is open.
    gateway_token: SecretStr | None = None
    # Integration secrets (passwords, SQS keys) are encrypted with it in the configurations topic.
    gateway_secret_key: SecretStr | None = None
    # An event's count is forgotten this long after its last due time: posting it again then starts over.
    gateway_count_ttl: float = 7 * 86400.0
    # A POST /v1/event not confirmed by then is answered 503 (post it again: at worst delivered twice, never lost).
    gateway_accept_timeout: float = 5.0
    # One HTTP delivery's timeout.
    gateway_delivery_timeout: float = 10.0
    # For SQS-compatible servers (ElasticMQ, LocalStack): where SendMessage goes instead of AWS.
    gateway_sqs_endpoint_url: str | None = None
    # A request body larger than this is answered 413.
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Deliveries in flight at once in one instance. More is not faster against quick targets: httpx's connection
    # pool costs more per request the more requests wait in it (measured on a local receiver: 1,000 deliveries/s at
    # 8, 650 at 16, 190 at 64); raise it for slow targets, whose answers take most of the time.
    gateway_concurrency: int = Field(default=16, ge=1, le=10_000)

    @field_validator("gateway_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            validate_topic_name(value + ".requests", what="gateway_prefix")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("gateway_token", "gateway_secret_key")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it for none)")
        return value

    @field_validator("gateway_count_ttl", "gateway_accept_timeout", "gateway_delivery_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc).removeprefix("duration: ")) from None
        if seconds <= 0:
            raise ValueError("must be longer than 0 s")
        return seconds
