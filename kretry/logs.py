"""Logging set-up for the CLI. The library itself only ever gets a logger; this is the one place that configures.

``--log-level`` is kretry's own: its structlog lines and librdkafka's. Other libraries (uvicorn, asyncio, ...) log
at WARNING and above unless ``--log-all`` widens the level to them too.

librdkafka writes its log lines to file descriptor 2 itself, past Python's logging. Its ``logger`` client setting
would hand them to Python, but only while the client is polled: an AdminClient's lines, the ones that say why a
broker cannot be reached, would never show. So the CLI reads descriptor 2 instead (``capture_librdkafka``): each
``%3|<time>|FAIL|<client>| ...`` line becomes a structlog line with ``logger="librdkafka"``, anything else passes
through unchanged, and the last error is kept for the message kretry exits with.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import sys
import threading
import time
from typing import IO, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

LIBRDKAFKA = "librdkafka"
# A refused connection is retried every few ms: one line per kind of complaint and 5 s is plenty.
REPEAT_EVERY = 5.0
_NATIVE = re.compile(r"^%(?P<sev>\d)\|[\d.]+\|(?P<fac>[^|]*)\|(?P<client>[^|]*)\|\s*(?:\[thrd:(?P<thrd>[^\]]*)\]:\s*)?")
_VARYING = re.compile(r"\(after \d+ms in state \w+\)|\d+ms")
# syslog severities, as librdkafka uses them
_LEVELS = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning", 5: "info", 6: "info", 7: "debug"}


def configure(level: str = "INFO", fmt: LogFormat = "auto", *, everything: bool = False) -> None:
    """structlog (and stdlib logging, where other libraries' lines arrive) to stderr: JSON, or console on a tty.

    ``level`` is for kretry's own lines; other libraries get it too only with ``everything``, else WARNING at least.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric if everything else max(numeric, logging.WARNING))


class Repeats:
    """Pure bookkeeping of a repeat gate: the first line of a kind passes, then one per ``every`` seconds."""

    def __init__(self, every: float = REPEAT_EVERY) -> None:
        self.every = every
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (when it last passed, held back since)

    def admit(self, kind: str, now: float) -> int | None:
        """None: hold this line back; else how many of its kind were held back since the last one passed."""
        passed, held = self._seen.get(kind, (float("-inf"), 0))
        if now - passed < self.every:
            self._seen[kind] = (passed, held + 1)
            return None
        self._seen[kind] = (now, 0)
        return held


def parse_native(line: str) -> tuple[str, str, str, str] | None:
    """Pure: ``(level, facility, client, message)`` of a librdkafka log line, None for any other line."""
    m = _NATIVE.match(line)
    if m is None:
        return None
    return _LEVELS[int(m["sev"])], m["fac"], m["client"], line[m.end() :].rstrip()


class Librdkafka:
    """Descriptor 2 read by a thread: librdkafka's lines to structlog, the rest to the real stderr."""

    def __init__(self) -> None:
        self._stderr_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        # Python's own writes (tracebacks, structlog) go straight to the real stderr, not round the pipe.
        self.stderr: IO[str] = open(  # noqa: SIM115 - lives as long as the process
            self._stderr_fd, "w", buffering=1, errors="backslashreplace", closefd=False
        )
        sys.stderr = self.stderr
        self._pipe = os.fdopen(read_fd, "rb")
        self._repeats = Repeats()
        self._errors: collections.deque[str] = collections.deque(maxlen=16)
        self._synced = threading.Condition()
        self._seen_marks = 0
        self._marks = 0
        threading.Thread(target=self._read, name="kretry-librdkafka-log", daemon=True).start()

    def _read(self) -> None:
        # Nothing may end this loop: a full pipe would block every librdkafka thread that logs, and so the worker.
        for raw in self._pipe:
            try:
                self._line(raw)
            except Exception:  # a line we could not log is still shown, as it came
                with contextlib.suppress(Exception):
                    self.stderr.write(raw.decode("utf-8", errors="replace"))

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        if line == _MARK:
            with self._synced:
                self._seen_marks += 1
                self._synced.notify_all()
            return
        native = parse_native(line)
        if native is None:
            self.stderr.write(line + "\n")
            return
        level, facility, client, message = native
        if level in ("critical", "error"):
            self._errors.append(message)
        held = self._repeats.admit(f"{facility}|{_VARYING.sub('', message)}", time.monotonic())
        if held is not None:
            extra = {"held_back": held} if held else {}
            # Looked up per line: configure() comes after the capture, and may come again.
            log = structlog.get_logger("kretry")
            getattr(log, level)(message, logger=LIBRDKAFKA, facility=facility, client=client, **extra)

    def sync(self, timeout: float = 1.0) -> None:
        """Wait until every line written to descriptor 2 so far has been read."""
        with self._synced:
            self._marks += 1
            target = self._marks
        os.write(2, (_MARK + "\n").encode())
        with self._synced:
            self._synced.wait_for(lambda: self._seen_marks >= target, timeout)

    def last_error(self) -> str | None:
        """librdkafka's latest error line, if any; the latest with a hint when there is one (librdkafka asks them:
        "... connecting to a PLAINTEXT broker listener?"), since a plain "Disconnected" often comes after it."""
        self.sync()
        hinted = [e for e in self._errors if _HINT.search(e)]
        return hinted[-1] if hinted else (self._errors[-1] if self._errors else None)

    def close(self) -> None:
        """Hand descriptor 2 back: what librdkafka writes while the interpreter shuts down goes out unchanged."""
        self.sync()
        os.dup2(self._stderr_fd, 2)


_MARK = "\x00kretry-log-sync"
_HINT = re.compile(r"\?(\s*\(after [^)]*\))?$")  # "... listener? (after 2ms in state SSL_HANDSHAKE)"
_captured: Librdkafka | None = None


def capture_librdkafka() -> Librdkafka:
    """Route librdkafka's own log lines through structlog, for the rest of the process; call before ``configure``."""
    global _captured
    if _captured is None:
        _captured = Librdkafka()
    return _captured


def librdkafka_error() -> str | None:
    """librdkafka's latest error line, when its lines are captured."""
    return None if _captured is None else _captured.last_error()
