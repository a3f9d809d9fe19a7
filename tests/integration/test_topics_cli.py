"""`kretry topics plan | create | check` and `kretry stats` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from tests.integration.kit import create_topics, produce, unique
from tests.integration.test_process import APP, app_env
from tests.integration.workers import ROOT

NewTopic = Callable[..., str]


def kretry(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "kretry.cli", *args], env=full, cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def topic_config(bootstrap: str, name: str, key: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)])
    return str(next(iter(futures.values())).result(timeout=30)[key].value)


def test_plan_create_check(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("orders", partitions=3)
    env = app_env(bootstrap, [topic], tmp_path / "l", delays="1m,2d")
    dlq = env["APP_DLQ"]
    create_topics(bootstrap, [f"{topic}_retry_1"], partitions=1)  # too narrow, made by someone else

    code, out, err = kretry(env, "topics", "plan", APP)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [
        ["TOPIC", "ROLE", "PARTITIONS", "DELAY", "RETENTION", "AT", "LEAST", "CLEANUP"],
        [topic, "main", "3", "-", "-", "-", "-"],
        [f"{topic}_retry_1", "retry", "3", "1m", "7d", "1d", "delete"],
        [f"{topic}_retry_2", "retry", "3", "2d", "7d", "4d", "delete"],
        [dlq, "dlq", "3", "-", "14d", "7d", "delete"],
        [f"{dlq}.replayed", "ledger", "1", "-", "-", "-", "compact"],
        [f"{env['APP_GROUP']}.control", "control", "1", "-", "4d", "4d", "delete"],  # twice the longest delay
    ]
    code, out, _ = kretry(env, "topics", "plan", APP, "--json")
    assert json.loads(out.splitlines()[2])["min_retention_ms"] == 4 * 86_400_000
    assert json.loads(out.splitlines()[2])["delay_s"] == 2 * 86_400

    code, out, _ = kretry(env, "topics", "check", APP)
    assert code == 6
    assert out.splitlines() == [
        f"{topic}_retry_1: 1 partitions, fewer than the 3 of its main topic",
        f"{topic}_retry_1: max.message.bytes=1048588, below the 1056780 a record of its main topic needs with "
        "kretry's headers; such records would reach the DLQ as stubs",
        f"{topic}_retry_2: missing (retry topic; `kretry topics create` creates it)",
        f"{dlq}: missing (dlq topic; `kretry topics create` creates it)",
        f"{env['APP_GROUP']}.control: missing (control topic; `kretry topics create` creates it)",
    ]

    code, out, err = kretry(env, "topics", "create", APP)
    assert code == 0, err
    assert out.splitlines() == [
        f"created {topic}_retry_2 (retry, 3 partitions, retention 7d)",
        f"created {dlq} (dlq, 3 partitions, retention 14d)",
        f"created {dlq}.replayed (ledger, 1 partitions, retention -)",
        f"created {env['APP_GROUP']}.control (control, 1 partitions, retention 4d)",
    ]
    assert topic_config(bootstrap, dlq, "retention.ms") == str(14 * 86_400_000)
    assert topic_config(bootstrap, f"{dlq}.replayed", "cleanup.policy") == "compact"

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, f"{topic}_retry_2", incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    code, out, _ = kretry(env, "topics", "check", APP)
    assert code == 6
    assert out.splitlines() == [
        f"{topic}_retry_1: 1 partitions, fewer than the 3 of its main topic",
        f"{topic}_retry_1: max.message.bytes=1048588, below the 1056780 a record of its main topic needs with "
        "kretry's headers; such records would reach the DLQ as stubs",
        f"{topic}_retry_2: retention.ms=3600000 (1h), below the 4d a retry topic needs",
    ]


def test_check_passes_after_create_and_missing_main_topic_fails(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    env = app_env(bootstrap, [new_topic("fine", partitions=2)], tmp_path / "l", delays="5s")
    assert kretry(env, "topics", "create", APP)[0] == 0
    code, out, _ = kretry(env, "topics", "check", APP)
    assert (code, out) == (0, "ok: every retry topic, the DLQ and its ledger are as kretry needs them\n")

    absent = unique("absent")
    code, out, err = kretry(app_env(bootstrap, [absent], tmp_path / "l"), "topics", "create", APP)
    assert code == 6
    assert f"main topic {absent} does not exist" in err


def test_plan_works_before_the_main_topics_exist(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    there, absent = new_topic("there", partitions=2), unique("absent")
    env = app_env(bootstrap, [there, absent], tmp_path / "l", delays="5s")
    dlq = env["APP_DLQ"]
    code, out, err = kretry(env, "topics", "plan", APP)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [
        ["TOPIC", "ROLE", "PARTITIONS", "DELAY", "RETENTION", "AT", "LEAST", "CLEANUP"],
        [there, "main", "2", "-", "-", "-", "-"],
        [f"{there}_retry_1", "retry", "2", "5s", "7d", "1d", "delete"],
        [absent, "main", "?", "-", "-", "-", "-"],
        [f"{absent}_retry_1", "retry", "?", "5s", "7d", "1d", "delete"],
        [dlq, "dlq", "?", "-", "14d", "7d", "delete"],
        [f"{dlq}.replayed", "ledger", "1", "-", "-", "-", "compact"],
        [f"{env['APP_GROUP']}.control", "control", "1", "-", "1d", "1d", "delete"],
        f"note: main topic {absent} does not exist yet; ? is as wide as it will be (--partitions N plans with "
        "N)".split(),
    ]
    code, out, err = kretry(env, "topics", "plan", APP, "--partitions", "6", "--json")
    assert code == 0, err
    widths = {row["name"]: row["partitions"] for row in map(json.loads, out.splitlines())}
    assert widths == {
        there: 2,
        absent: 6,
        f"{there}_retry_1": 2,
        f"{absent}_retry_1": 6,
        dlq: 6,
        f"{dlq}.replayed": 1,
        f"{env['APP_GROUP']}.control": 1,
    }


def test_plan_shows_a_shared_tier_and_check_notes_a_topic_no_stage_reads(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("tail", partitions=2)
    env = app_env(bootstrap, [topic], tmp_path / "l", delays="1s,1m,1m,1m")
    dlq = env["APP_DLQ"]
    code, out, err = kretry(env, "topics", "plan", APP)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()[:7]] == [
        ["TOPIC", "ROLE", "PARTITIONS", "DELAY", "RETENTION", "AT", "LEAST", "CLEANUP"],
        [topic, "main", "2", "-", "-", "-", "-"],
        [f"{topic}_retry_1", "retry", "2", "1s", "7d", "1d", "delete"],
        [f"{topic}_retry_2", "retry", "2", "1m", "7d", "1d", "delete"],  # attempts 2 to 4: one topic
        [dlq, "dlq", "2", "-", "14d", "7d", "delete"],
        [f"{dlq}.replayed", "ledger", "1", "-", "-", "-", "compact"],
        [f"{env['APP_GROUP']}.control", "control", "1", "-", "1d", "1d", "delete"],
    ]
    assert out.splitlines()[7:] == [
        f"note: {topic}_retry_2: attempts 2-4 share this topic, 1m apart (equal delays in a row are one tier; each "
        "record carries its attempt in kretry-attempt)"
    ]
    code, out, _ = kretry(env, "topics", "plan", APP, "--json")
    shared = json.loads(out.splitlines()[2])
    assert (shared["name"], shared["first_attempt"], shared["last_attempt"]) == (f"{topic}_retry_2", 2, 4)

    create_topics(bootstrap, [f"{topic}_retry_3"], partitions=2)  # left by a schedule of one topic per attempt
    assert kretry(env, "topics", "create", APP)[0] == 0
    code, out, _ = kretry(env, "topics", "check", APP)
    assert code == 0
    assert out.splitlines() == [
        f"note: {topic}_retry_3: no stage reads it, {topic} has 2 retry tiers; records still on it are not retried "
        "(let the old schedule drain it first; delete it once it is empty)",
        "ok: every retry topic, the DLQ and its ledger are as kretry needs them",
    ]


def test_stats_shows_lag_age_and_dlq_depth(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("stats", partitions=2)
    env = app_env(bootstrap, [topic], tmp_path / "l", delays="1s")
    assert kretry(env, "topics", "create", APP)[0] == 0
    produce(bootstrap, topic, [(None, b"a", None)] * 3, partition=0)
    produce(bootstrap, topic, [(None, b"b", None)] * 2, partition=1)
    produce(bootstrap, env["APP_DLQ"], [(None, b"dead", None)], partition=1)

    code, out, err = kretry(env, "stats", APP, "--json")
    assert code == 0, err
    stats = json.loads(out)
    main, retry = stats["stages"]
    assert (main["stage"], main["group"], main["lag"]) == ("main", env["APP_GROUP"], 5)
    assert 0 <= main["oldest_age_s"] < 60
    assert (retry["stage"], retry["lag"], retry["oldest_age_s"]) == ("retry_1", 0, None)
    assert stats["dlq"] == {"topic": env["APP_DLQ"], "depth": 1}
    code, out, _ = kretry(env, "stats", APP)
    assert out.splitlines()[-1] == f"DLQ {env['APP_DLQ']}: 1 records"
