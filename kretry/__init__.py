"""kretry: non-blocking Kafka retries with retry topics, delays and a shared dead-letter queue."""

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
from kretry.message import Message
from kretry.retrier import Retrier
from kretry.topology import parse_retry_topic, retry_topic
from kretry.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AppImportError",
    "BrokerUnavailable",
    "ConfigError",
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
    "parse_retry_topic",
    "retry_topic",
]
