"""Callables among the librdkafka settings: what confluent-kafka accepts, and the stage's ``error_cb`` beside a user's.

They come only from code (``Retrier(kafka={"oauth_cb": provider})``): ``KRETRY_KAFKA`` is JSON and cannot carry
one. They reach every client kretry makes, and log lines show them as ``<callable>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import structlog

log = structlog.get_logger("kretry")

# confluent-kafka's own keys (not librdkafka's): each takes a Python object, never a string.
CALLBACK_KEYS = ("error_cb", "throttle_cb", "stats_cb", "oauth_cb", "logger", "on_commit", "on_delivery")
SHOWN_AS = "<callable>"

ErrorCallback = Callable[[Any], None]


def problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the librdkafka setting ``key``, or None."""
    if key in CALLBACK_KEYS:
        # The logger is a logging.Logger (confluent-kafka calls its .log), the others plain callables.
        fits = callable(getattr(value, "log", None)) if key == "logger" else callable(value)
        if fits:
            return None
        wanted = "a logging.Logger" if key == "logger" else "a callable"
        return (
            f"takes {wanted}, got {type(value).__name__} {value!r}; pass it in code, "
            f"Retrier(kafka={{{key!r}: ...}}): the environment (JSON) cannot carry one"
        )
    if isinstance(value, (str, int, float, bool)):
        return None
    if callable(value):
        return f"a callable is accepted only for {', '.join(CALLBACK_KEYS)}"
    return f"a librdkafka setting is a string, a number or a boolean, got {type(value).__name__} {value!r}"


def shown(key: str, value: Any) -> Any:
    return SHOWN_AS if key in CALLBACK_KEYS or callable(value) else value


def with_error_cb(conf: Mapping[str, Any], own: ErrorCallback) -> dict[str, Any]:
    """``conf`` whose ``error_cb`` calls ``own`` first, then the user's ``error_cb`` if ``conf`` has one.

    The stage's own callback decides whether an error is fatal; a user's callback that raises must not take that
    away, nor stop the client's poll (confluent-kafka re-raises a callback's exception from poll()).
    """
    theirs = conf.get("error_cb")
    if theirs is None:
        return {**conf, "error_cb": own}

    def both(err: Any) -> None:
        own(err)
        try:
            theirs(err)
        except Exception as exc:
            log.warning("the error_cb of the kafka settings raised", error=f"{type(exc).__name__}: {exc}")

    return {**conf, "error_cb": both}


# Called from a client's poll(): confluent-kafka re-raises what they raise there, out of whatever kretry was doing
# (a stage's consume, the worker's own admin requests).
GUARDED_KEYS = ("error_cb", "throttle_cb", "stats_cb", "on_commit")


def guarded(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` whose user callbacks log what they raise instead of raising it into kretry's own calls."""
    out = dict(conf)
    for key in GUARDED_KEYS:
        theirs = out.get(key)
        if callable(theirs):
            out[key] = _never_raising(key, theirs)
    return out


def _never_raising(key: str, theirs: Callable[..., Any]) -> Callable[..., None]:
    def call(*args: Any) -> None:
        try:
            theirs(*args)
        except Exception as exc:
            with contextlib.suppress(Exception):  # not even a broken log stream may raise from here
                log.warning(f"the {key} of the kafka settings raised", error=f"{type(exc).__name__}: {exc}")

    return call
