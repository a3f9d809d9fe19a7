"""What a handler's Message says on a real broker: kretry's headers read back as replays and origin fields."""

from __future__ import annotations

from collections.abc import Callable

from kretry import Message, Retrier
from kretry import headers as hdr
from tests.integration.kit import committed, produce, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def test_replays_and_origin_on_the_main_and_a_retry_topic(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("msg", partitions=2)
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    seen: list[tuple[object, ...]] = []

    @retrier.handler(topic, delays=["0s"], key_deserializer=lambda raw: (raw or b"").decode())
    def handle(msg: Message) -> None:
        here = msg.offset if msg.attempt == 0 else None
        origin = (msg.origin_partition, msg.origin_offset, here)
        seen.append((msg.attempt, msg.key, msg.value, msg.headers, msg.replays, msg.partition, *origin))
        if msg.attempt == 0:
            raise ConnectionError("down")

    filler = [(b"f", b"filler", None)] * 3  # the records under test sit past offset 0 of partition 1
    replayed = [("trace", b"t1"), (hdr.REPLAYS, b"2"), (hdr.GROUP, retrier.group_id.encode())]
    produce(bootstrap, topic, [*filler, (b"k1", b"fresh", None), (b"k2", b"again", replayed)], partition=1)
    with running(retrier):
        retry = f"{topic}_retry_1"
        wait_until(
            lambda: committed(bootstrap, f"{retrier.group_id}.{retry}", retry, partitions=2)[1] == 5,
            timeout=30,
            what="every retry handled",
        )

    main = {s[2]: s for s in seen if s[0] == 0}
    retried = {s[2]: s for s in seen if s[0] == 1}
    assert main[b"fresh"] == (0, "k1", b"fresh", [], 0, 1, 1, 3, 3)
    assert main[b"again"] == (0, "k2", b"again", [("trace", b"t1")], 2, 1, 1, 4, 4)
    # On the retry topic: its own offsets there (0..4), the origin's on the main topic, the replay count carried.
    assert retried[b"fresh"] == (1, "k1", b"fresh", [], 0, 1, 1, 3, None)
    assert retried[b"again"] == (1, "k2", b"again", [("trace", b"t1")], 2, 1, 1, 4, None)
