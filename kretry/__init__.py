"""kretry: non-blocking Kafka retries with retry topics, delays and a shared dead-letter queue."""

from kretry.backoff import Backoff, exponential, fixed, linear
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    DurationError,
    KafkaFatalError,
    KretryError,
    NonRetryable,
    RetryLater,
    TopologyError,
)
from kretry.guard import DlqGuard
from kretry.message import Message
from kretry.retrier import Retrier
from kretry.serde import json
from kretry.topology import parse_retry_topic, retry_topic
from kretry.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AppImportError",
    "Backoff",
    "BrokerUnavailable",
    "ConfigError",
    "DlqGuard",
    "DurationError",
    "KafkaFatalError",
    "KretryError",
    "Message",
    "NonRetryable",
    "Retrier",
    "RetryLater",
    "TopologyError",
    "Worker",
    "__version__",
    "exponential",
    "fixed",
    "json",
    "linear",
    "parse_retry_topic",
    "retry_topic",
]
