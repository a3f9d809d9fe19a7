"""What the local JVM services (Kafka in kafka_local.py, ElasticMQ in sqs_local.py) share: their jars fetched from
Maven Central, and one process per home folder, remembered by a pid file. Standard library only."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


def missing_java_tools() -> list[str]:
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def copy_dependencies(pom: Path, libs: Path) -> str | None:
    """Put the runtime classpath of ``pom`` in ``libs``, all or nothing (an interrupted fetch is never mistaken for a
    cached one); Maven's output if it failed, else None."""
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(pom),
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"{done.stdout}{done.stderr}"
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return None


def spawn(cmd: list[str], log_file: Path, pid_file: Path, detach: bool) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with its output appended to ``log_file`` and its pid in ``pid_file``."""
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # A detached service outlives `make kafka`/`make sqs`; an attached one dies with the test session's group.
            start_new_session=detach,
        )
    pid_file.write_text(str(proc.pid))
    return proc


def running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop(pid_file: Path, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM the process of ``pid_file``, SIGKILL it after ``timeout``; ``proc``, our own child, is reaped."""
    pid = running_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()  # reap our own child, or Python warns that it is still running
    pid_file.unlink(missing_ok=True)
