"""``MODULE:ATTR`` app strings, as uvicorn and FastStream read them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from kretry.errors import AppImportError
from kretry.retrier import Retrier


def load_app(target: str, app_dir: str | Path = ".") -> Retrier:
    """Import ``MODULE:ATTR`` with ``app_dir`` first on sys.path; ATTR may be dotted, or a factory to call."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise AppImportError(f"{target!r}: expected MODULE:ATTR, e.g. 'app:retrier'")
    path = str(Path(app_dir).resolve())
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing *target* module is ours to report; one missing inside the user's code is theirs.
        if exc.name is not None and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise AppImportError(f"{target!r}: no module named {module_name!r} (app dir {app_dir})") from None
        raise
    obj: object = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(f"{target!r}: module {module_name!r} has no attribute {attr_path!r}") from None
    if not isinstance(obj, Retrier) and callable(obj):
        obj = obj()
    if not isinstance(obj, Retrier):
        raise AppImportError(f"{target!r} is a {type(obj).__name__}, not a kretry.Retrier")
    return obj
