#!/usr/bin/env python3
"""A single-node Apache Kafka broker (KRaft) without Docker, for development and tests.

The broker is the real one: the ``org.apache.kafka:kafka_2.13`` jars from Maven Central (``tools/kafka/pom.xml``),
run with the local Java 17+. Only the standard library is used here, so ``make kafka`` and ``.ci/run`` can call
this before any virtualenv exists.

    python3 tools/kafka_local.py start [--port 9092] [--home .kafka/local]   # idempotent, waits until ready
    python3 tools/kafka_local.py stop  [--home .kafka/local]
    python3 tools/kafka_local.py fetch                                        # jars only

``start`` prefers ``docker compose -f docker-compose.kafka.yml`` when a Docker engine answers.
The test suite imports :class:`LocalKafka` to run its own broker on free ports.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jvm_process
from jvm_process import missing_java_tools

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "tools" / "kafka" / "pom.xml"
LIBS = ROOT / ".kafka" / "libs"
DEFAULT_HOME = ROOT / ".kafka" / "local"
COMPOSE_FILE = ROOT / "docker-compose.kafka.yml"
READY_LINE = "Kafka Server started"

# The SASL listener exists so tests can prove that security settings reach librdkafka untouched.
SASL_USER = "kretry"
SASL_PASSWORD = "kretry-secret"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""

NOTHING_TO_RUN_KAFKA = """\
kretry needs a Kafka broker, and this machine can start neither kind:
  - no Docker engine answered `docker info` (for docker-compose.kafka.yml), and
  - {missing} is missing for the local broker built from Maven Central jars.
Install one of them: Docker (https://docs.docker.com/engine/install/), or a Java 17+ JDK and Maven
(Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless maven`). Or point KAFKA_BOOTSTRAP_SERVERS at a broker
you already run."""


class KafkaLocalError(RuntimeError):
    """The local broker could not be fetched, formatted or started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def fetch_jars(libs: Path = LIBS) -> Path:
    """Download the broker's runtime classpath once; later calls find it cached."""
    if any(libs.glob("kafka_2.13-*.jar")) and any(libs.glob("log4j-core-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is needed to fetch the Kafka jars from Maven Central")
    failed = jvm_process.copy_dependencies(POM, libs)
    if failed is not None:
        raise KafkaLocalError(f"fetching the Kafka jars failed:\n{failed}")
    return libs


def cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class LocalKafka:
    """One broker+controller process with its config, data and log under ``home``."""

    home: Path
    port: int
    controller_port: int
    sasl_port: int
    heap: str = "512m"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def properties(self) -> str:
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{SASL_USER}" password="{SASL_PASSWORD}" user_{SASL_USER}="{SASL_PASSWORD}";'
        )
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
                "inter.broker.listener.name=PLAINTEXT",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=PLAIN",
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ]
        )

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaLocalError("Java 17+ (java) is needed to run the local Kafka broker")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{LIBS}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self.properties())
        (self.home / "log4j2.properties").write_text(LOG4J2)
        if (self.data_dir / "meta.properties").exists():
            return
        # A static controller.quorum.voters list: no --standalone here (that flag is for dynamic quorums).
        cmd = self._java(
            "kafka.tools.StorageTool",
            "format",
            # "=" form: a random id may begin with "-", which argparse would take for an option.
            f"--cluster-id={cluster_id()}",
            "--config",
            str(self.home / "server.properties"),
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaLocalError(f"formatting {self.data_dir} failed:\n{done.stdout}{done.stderr}")

    def running_pid(self) -> int | None:
        return jvm_process.running_pid(self.pid_file)

    def start(self, timeout: float = 90.0, detach: bool = False) -> subprocess.Popen[bytes]:
        fetch_jars()
        self._format()
        proc = jvm_process.spawn(
            self._java("kafka.Kafka", str(self.home / "server.properties")), self.log_file, self.pid_file, detach
        )
        self._proc = proc
        try:
            self.wait_ready(proc, timeout)
        except BaseException:
            self.stop()
            raise
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        offset = self.log_file.stat().st_size if proc is None else 0
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise KafkaLocalError(f"the broker exited with {proc.returncode}; see {self.log_file}")
            text = self.log_file.read_text(errors="replace")
            if READY_LINE in text[offset:] and port_open("127.0.0.1", self.port):
                return
            time.sleep(0.2)
        raise KafkaLocalError(f"the broker did not start within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> None:
        jvm_process.stop(self.pid_file, self._proc, timeout)
        self._proc = None


def _home_broker(home: Path, port: int) -> LocalKafka:
    """The broker of `make kafka`: fixed ports, remembered in its home so stop/start agree."""
    ports_file = home / "ports"
    if ports_file.exists():
        saved = [int(p) for p in ports_file.read_text().split()]
        if saved[0] == port:
            return LocalKafka(home, saved[0], saved[1], saved[2])
    home.mkdir(parents=True, exist_ok=True)
    broker = LocalKafka(home, port, port + 1, port + 2)
    ports_file.write_text(f"{broker.port} {broker.controller_port} {broker.sasl_port}\n")
    return broker


def cmd_start(args: argparse.Namespace) -> int:
    if not args.no_docker and docker_engine_answers():
        if port_open("127.0.0.1", args.port):
            print(f"kafka: already answering on 127.0.0.1:{args.port}")
            return 0
        cmd = ["docker", "compose", "-f", str(COMPOSE_FILE), "up", "-d", "--wait"]
        return subprocess.run(cmd, check=False).returncode
    missing = missing_java_tools()
    if missing:
        print(NOTHING_TO_RUN_KAFKA.format(missing=" and ".join(missing)), file=sys.stderr)
        return 2
    broker = _home_broker(Path(args.home), args.port)
    if broker.running_pid() is not None and port_open("127.0.0.1", broker.port):
        print(f"kafka: already running on {broker.bootstrap} (pid {broker.running_pid()})")
        return 0
    if port_open("127.0.0.1", args.port):
        print(
            f"kafka: port {args.port} is taken by another process; is a broker already running?",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    try:
        proc = broker.start(timeout=args.timeout, detach=True)
    except KafkaLocalError as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 1
    print(
        f"kafka: ready on {broker.bootstrap} (pid {proc.pid}) in {time.monotonic() - started:.1f}s; "
        f"log: {broker.log_file}"
    )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if not args.no_docker and docker_engine_answers():
        return subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "down"], check=False).returncode
    broker = _home_broker(Path(args.home), args.port)
    was = broker.running_pid()
    broker.stop()
    print("kafka: stopped" if was else "kafka: was not running")
    return 0


def cmd_fetch(_: argparse.Namespace) -> int:
    try:
        print(f"kafka: jars in {fetch_jars()}")
    except KafkaLocalError as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(DEFAULT_HOME), help="config, data and log folder")
    parser.add_argument("--port", type=int, default=9092, help="PLAINTEXT port (controller: +1, SASL: +2)")
    parser.add_argument("--no-docker", action="store_true", help="use the local JVM broker even with Docker")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the broker unless it runs, and wait until it answers")
    start.add_argument("--timeout", type=float, default=90.0)
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the broker").set_defaults(func=cmd_stop)
    sub.add_parser("fetch", help="download the broker jars").set_defaults(func=cmd_fetch)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
