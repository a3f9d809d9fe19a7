#!/usr/bin/env python3
"""A local SQS-compatible server (ElasticMQ) without Docker, for the gateway's development and tests.

The server is the real one: ``org.elasticmq:elasticmq-server_2.13`` and its dependencies from Maven Central (its
"all" jar is not published there), run with the local Java 17+, bound to 127.0.0.1 only. Only the standard library
is used here, so ``make sqs`` and ``.ci/run`` can call this before any virtualenv exists.

    python3 tools/sqs_local.py start [--port 9324] [--home .sqs/local]   # idempotent, waits until ready
    python3 tools/sqs_local.py stop  [--home .sqs/local]
    python3 tools/sqs_local.py status [--port 9324]
    python3 tools/sqs_local.py fetch                                      # jars only

Queue URLs come back as ``http://127.0.0.1:9324/000000000000/NAME``; boto3 talks to it with
``endpoint_url="http://127.0.0.1:9324"``, any region and any keys. The test suite imports :class:`LocalSqs` to run
its own server on a free port.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jvm_process
from jvm_process import missing_java_tools

ROOT = Path(__file__).resolve().parent.parent
LIBS = ROOT / ".sqs" / "libs"
DEFAULT_HOME = ROOT / ".sqs" / "local"
ELASTICMQ = "org.elasticmq:elasticmq-server_2.13:1.6.11"
MAIN_CLASS = "org.elasticmq.server.Main"

# The one dependency; Maven resolves the rest. Written to a temporary folder at fetch time: nothing is built from it.
POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kretry</groupId>
  <artifactId>kretry-local-sqs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

# Without a config ElasticMQ binds 0.0.0.0 and opens a second (stats) port: loopback and one port only.
CONFIG = """\
include classpath("application.conf")
node-address {{ host = "127.0.0.1", port = {port} }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}
rest-stats {{ enabled = false }}
"""


class SqsLocalError(RuntimeError):
    """The local SQS server could not be fetched or started."""


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether an SQS server answers ListQueues at ``endpoint`` (its query API needs no signature on ElasticMQ)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/?Action=ListQueues", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def fetch_jars(libs: Path = LIBS) -> Path:
    """Download the server's runtime classpath once; later calls find it cached."""
    if any(libs.glob("elasticmq-server_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise SqsLocalError("Maven (mvn) is needed to fetch the ElasticMQ jars from Maven Central")
    group, artifact, version = ELASTICMQ.split(":")
    with tempfile.TemporaryDirectory(prefix="kretry-sqs-pom-") as folder:
        pom = Path(folder) / "pom.xml"
        pom.write_text(POM.format(group=group, artifact=artifact, version=version))
        failed = jvm_process.copy_dependencies(pom, libs)
    if failed is not None:
        raise SqsLocalError(f"fetching the ElasticMQ jars failed:\n{failed}")
    return libs


@dataclass
class LocalSqs:
    """One ElasticMQ process with its config and log under ``home``; queues live in memory."""

    home: Path
    port: int
    heap: str = "256m"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "elasticmq.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "elasticmq.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "elasticmq.conf"

    def _command(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise SqsLocalError("Java 17+ (java) is needed to run the local SQS server")
        return [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dconfig.file={self.config_file}",
            "-cp",
            f"{LIBS}/*",
            MAIN_CLASS,
        ]

    def running_pid(self) -> int | None:
        return jvm_process.running_pid(self.pid_file)

    def start(self, timeout: float = 60.0, detach: bool = False) -> subprocess.Popen[bytes]:
        fetch_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(CONFIG.format(port=self.port))
        proc = jvm_process.spawn(self._command(), self.log_file, self.pid_file, detach)
        self._proc = proc
        try:
            self._wait_ready(proc, timeout)
        except BaseException:
            self.stop()
            raise
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SqsLocalError(f"ElasticMQ exited with {proc.returncode}; see {self.log_file}")
            if answers(self.endpoint):
                return
            time.sleep(0.2)
        raise SqsLocalError(f"ElasticMQ did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> None:
        jvm_process.stop(self.pid_file, self._proc, timeout)
        self._proc = None


def cmd_start(args: argparse.Namespace) -> int:
    server = LocalSqs(Path(args.home), args.port)
    if answers(server.endpoint):
        pid = server.running_pid()
        print(f"sqs: already answering on {server.endpoint}" + (f" (pid {pid})" if pid else ""))
        return 0
    missing = missing_java_tools()
    if missing:
        print(f"sqs: {' and '.join(missing)} missing; install a Java 17+ JDK and Maven", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        proc = server.start(timeout=args.timeout, detach=True)
    except SqsLocalError as exc:
        print(f"sqs: {exc}", file=sys.stderr)
        return 1
    print(
        f"sqs: ready on {server.endpoint} (pid {proc.pid}) in {time.monotonic() - started:.1f}s; log: {server.log_file}"
    )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    server = LocalSqs(Path(args.home), args.port)
    was = server.running_pid()
    server.stop()
    print("sqs: stopped" if was else "sqs: was not running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    server = LocalSqs(Path(args.home), args.port)
    if answers(server.endpoint):
        print(f"sqs: answering on {server.endpoint} (pid {server.running_pid() or 'not ours'})")
        return 0
    print(f"sqs: not answering on {server.endpoint}")
    return 1


def cmd_fetch(_: argparse.Namespace) -> int:
    try:
        print(f"sqs: jars in {fetch_jars()}")
    except SqsLocalError as exc:
        print(f"sqs: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqs_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(DEFAULT_HOME), help="config, pid and log folder")
    parser.add_argument("--port", type=int, default=9324, help="SQS API port, on 127.0.0.1")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the server unless it answers, and wait until it does")
    start.add_argument("--timeout", type=float, default=60.0)
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the server this folder started").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="whether a server answers on the port (exit 1 if not)").set_defaults(func=cmd_status)
    sub.add_parser("fetch", help="download the server jars").set_defaults(func=cmd_fetch)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
