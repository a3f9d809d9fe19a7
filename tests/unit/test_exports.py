from __future__ import annotations

import types

import kretry


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(kretry).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, types.ModuleType)
    }
    assert sorted(kretry.__all__) == sorted(public)
    assert len(kretry.__all__) == len(set(kretry.__all__))


def test_every_exported_name_resolves() -> None:
    for name in kretry.__all__:
        assert getattr(kretry, name) is not None
    assert kretry.__version__ == "0.1.0"
    assert issubclass(kretry.DurationError, kretry.ConfigError)
    assert kretry.retry_topic("orders", 2) == "orders_retry_2"


def test_star_import_gives_all() -> None:
    namespace: dict[str, object] = {}
    exec("from kretry import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(kretry.__all__)
