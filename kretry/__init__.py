"""kretry: non-blocking Kafka retries with retry topics, delays and a shared dead-letter queue."""

__version__ = "0.1.0"
