"""kretry gateway: Pretry's retry service on Kafka (see ``deliver`` for the delivery edge)."""
