"""``kretry run --processes N``: N worker processes under one supervisor, as gunicorn, uvicorn and dramatiq do.

The supervisor imports nothing of the app: each child is ``python -m kretry.cli run ... --processes 1``, a worker
like any other, and the consumer groups share the partitions among them exactly as they would among workers on
different machines. What the supervisor adds is only what one process cannot do for itself:

- a child that exits with a code a restart cannot fix (bad arguments, import, configuration, topology, retries
  exhausted with on_exhausted="stop") stops the others and the supervisor exits with that code: the same code one
  process would have exited with, and no restart loop.
- any other exit (1, 5, 11, killed by a signal, even 0: someone stopped that one child) is a crash: the child is
  started again after 1 s, 2 s, 4 s ... up to 30 s; the wait goes back to 1 s once a child has run 60 s.
- SIGINT/SIGTERM go to every child; each finishes its in-flight work within its own stop timeout, and a child
  still running a margin after that is killed. The supervisor exits with the worst child's code, 0 if all are 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from kretry.worker import STOP_TIMEOUT

log = structlog.get_logger("kretry")

# Exit codes of `kretry run` that a restart cannot fix: kretry.commands.exits' numbers (the core imports no command).
DO_NOT_RESTART = frozenset({2, 3, 4, 6, 7})
EXIT_STOP_TIMEOUT = 10
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long crashed for a new reason: its backoff starts again at 1 s
STOP_MARGIN = 5.0  # past the child's own stop timeout: interpreter and librdkafka shutdown
POLL = 0.1

_PR_SET_PDEATHSIG = 1


def backoff(crashes: int) -> float:
    """Seconds before restarting a child after its ``crashes``-th crash in a row (1, 2, 4, ... 30)."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, crashes - 1)))


def crashes_in_a_row(before: int, ran_for: float) -> int:
    """A child's crashes in a row, counting the one after it ran ``ran_for`` seconds: a child that ran
    ``HEALTHY_AFTER`` seconds crashed for a new reason, and starts the count again."""
    return 1 if ran_for >= HEALTHY_AFTER else before + 1


def exit_code(returncode: int) -> int:
    """A child's code as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def worst(codes: Sequence[int]) -> int:
    """The supervisor's code at a stop: 0 when every child exited 0, else the highest of the others."""
    return max(codes, default=0)


def child_argv(parser: argparse.ArgumentParser, args: argparse.Namespace, index: int) -> list[str]:
    """The ``kretry run`` arguments of child ``index``: every option as given, ``--processes 1``, and
    ``--http-port`` shifted by ``index`` (children cannot share a port)."""
    positional: list[str] = []
    options: list[str] = []
    for action in parser._actions:  # walked, not listed: an option added to `run` later reaches the children too
        if isinstance(action, argparse._HelpAction) or action.dest in ("processes", "run_parser"):
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            positional.append(str(value))
        elif action.nargs == 0:  # a flag: store_true
            if value != action.default:
                options.append(action.option_strings[-1])
        elif value is not None:
            if action.dest == "http_port":
                value += index
            options += [action.option_strings[-1], str(value)]
    return [*positional, *options, "--processes", "1"]


def _stderr_fd() -> int | None:
    """Where the children write: the real stderr (the CLI's own descriptor 2 is a pipe read for librdkafka's lines)."""
    with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
        return sys.stderr.fileno()
    return None


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a child gets SIGTERM when the supervisor dies, even by kill -9, instead of working on as an orphan."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return set_death_signal


@dataclass
class Child:
    index: int
    argv: list[str]
    env: dict[str, str] | None = None  # None: this process's environment
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    crashes: int = 0
    restart_at: float | None = None  # set while waiting to restart after a crash


class Supervisor:
    def __init__(
        self, argvs: Sequence[list[str]], stopping: threading.Event, envs: Sequence[dict[str, str] | None] = ()
    ) -> None:
        self.children = [Child(i, argv, envs[i] if envs else None) for i, argv in enumerate(argvs)]
        self.stopping = stopping
        self._stderr = _stderr_fd()
        self._preexec = _die_with_parent()

    def run(self) -> int:
        for child in self.children:
            self._start(child)
        code = None
        while code is None and not self.stopping.is_set():
            code = self._tend()
            if code is None:
                self.stopping.wait(POLL)
        codes = self._stop_all()
        final = worst(codes) if code is None else code
        log.info("worker processes stopped", exit_codes=codes, exit_code=final)
        return final

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "run", *child.argv],
            stderr=self._stderr,
            env=child.env,
            preexec_fn=self._preexec,
        )
        child.started, child.restart_at = time.monotonic(), None
        log.info("worker process started", child=child.index, pid=child.proc.pid)

    def _tend(self) -> int | None:
        """Restart what crashed and is due; a code that must stop the supervisor, or None."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            assert child.proc is not None
            returncode = child.proc.poll()
            if returncode is None:
                continue
            code = exit_code(returncode)
            if code in DO_NOT_RESTART:
                log.error("worker process exited; stopping", child=child.index, pid=child.proc.pid, exit_code=code)
                return code
            child.crashes = crashes_in_a_row(child.crashes, now - child.started)
            delay = backoff(child.crashes)
            child.restart_at = now + delay
            log.warning(
                "worker process crashed; restarting",
                child=child.index,
                pid=child.proc.pid,
                exit_code=code,
                crashes=child.crashes,
                restart_in_s=delay,
            )
        return None

    def _stop_all(self) -> list[int]:
        """SIGTERM every running child, wait for them, SIGKILL what is left; every child's exit code."""
        running = [c.proc for c in self.children if c.restart_at is None and c.proc is not None]
        for proc in running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT + STOP_MARGIN
        codes = []
        for proc in running:
            try:
                returncode = proc.wait(max(0.0, deadline - time.monotonic()))
                # Killed by our SIGTERM: a child still starting, before its handler was installed, had no work yet.
                codes.append(0 if returncode == -signal.SIGTERM else exit_code(returncode))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                log.error("worker process killed: still running after the stop timeout", pid=proc.pid)
                codes.append(EXIT_STOP_TIMEOUT)
        return codes


def supervise(parser: argparse.ArgumentParser, args: argparse.Namespace, stopping: threading.Event) -> int:
    """Run ``args.processes`` children of ``kretry run`` until ``stopping``; the supervisor's exit code."""
    argvs = [child_argv(parser, args, i) for i in range(args.processes)]
    instance = os.environ.get("KRETRY_INSTANCE_ID")
    envs: list[dict[str, str] | None] = []
    if instance:
        # One id shared by N workers would have them fence each other for ever (kretry.instance): <id>-<index>.
        envs = [{**os.environ, "KRETRY_INSTANCE_ID": f"{instance}-{i}"} for i in range(args.processes)]
    log.info("supervising worker processes", processes=args.processes, pid=os.getpid())
    return Supervisor(argvs, stopping, envs).run()
