"""How far behind a stage is, as ``kretry stats`` counts it: records between the group's committed offset and the
end of each partition (the start of the log where nothing is committed), records waiting for their due time
included. Asked of the cluster through an admin client, so no stage's own consumer is used from another thread and
no stage waits for the answer."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

TIMEOUT = 5.0


def group_lag(admin: AdminClient, group: str, topic: str, partitions: Iterable[int]) -> int:
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        return 0
    request = [ConsumerGroupTopicPartitions(group, tps)]
    answer = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    committed = {tp.partition: tp.offset for tp in answer.topic_partitions}
    ends = _offsets(admin, tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
    starts = _offsets(admin, tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    return sum(max(0, ends[p] - max(committed.get(p, -1), starts[p])) for p in ends)


def _offsets(admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec) -> dict[int, int]:
    futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=TIMEOUT)
    return {tp.partition: int(future.result(timeout=TIMEOUT).offset) for tp, future in futures.items()}
