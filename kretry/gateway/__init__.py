"""``kretry gateway``: Pretry's retry service, wire-compatible, on Kafka. Any program hands it an event over HTTP;
it delivers the event later to HTTP endpoints and SQS queues, up to ``maxRetry`` times, then dead-letters it.

A client of kretry's core (settings, topic creation, the DLQ and its tools, the one HTTP stack), never a special
case inside a stage. Modules, pure ones first:

settings    GatewaySettings: kretry's settings and ``KRETRY_GATEWAY_*``
topics      pure: the gateway's topics and groups; the timing wheel's buckets
configs     pure: a configuration as Pretry takes it, checked field by field; redaction
events      pure: an event's identity (canonical JSON), its headers, requests, replies and counts
counts      pure: what the owner decides for one request (Pretry's counting rules)
deadletter  pure: a dead letter ``kretry dlq`` reads and replays
secrets     integration secrets sealed at rest (AES-GCM)
consume     reading helpers: offsets asked until answered, batches taken without waiting
outbox      the one producer; batches and awaitables of acknowledgements
store       the configurations view every instance follows
replies     the answers owners send back to the asking instance
owner       the partitions' owners: exact counts and "already set" across instances
wheel       the timing wheel's consumer: buckets of fixed delays over topics
due         the due stage: held in memory until due to the millisecond, then delivered
attempt     one delivery attempt and what follows it (retry request, dead letter)
deliver/    the delivery edge: HTTP (httpx) and SQS (boto3) targets and outcomes
metrics     the gateway's metrics
api, app    Pretry's routes and the Starlette app; service: an instance's threads; command: ``kretry gateway``
"""
