from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kretry.errors import AppImportError
from kretry.importer import load_app
from kretry.retrier import Retrier

Write = Callable[..., str]
_serial = itertools.count()


@pytest.fixture
def write_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """Writes a module with a unique name into tmp_path and returns that name; forgets it afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_app prepends the app dir
    names: list[str] = []

    def write(source: str, submodule: str | None = None) -> str:
        name = f"kretry_app_{uuid.uuid4().hex[:8]}_{next(_serial)}"
        if submodule is None:
            (tmp_path / f"{name}.py").write_text(source)
        else:
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("")
            (tmp_path / name / f"{submodule}.py").write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]


APP = """
from kretry import Retrier
retrier = Retrier("svc", dlq_topic=None)
class holder:
    inner = retrier
def make():
    return Retrier("made")
not_a_retrier = 42
def make_wrong():
    return "nope"
"""


@pytest.mark.parametrize(("attr", "group"), [("retrier", "svc"), ("holder.inner", "svc"), ("make", "made")])
def test_load_app(write_app: Write, tmp_path: Path, attr: str, group: str) -> None:
    name = write_app(APP)
    app = load_app(f"{name}:{attr}", tmp_path)
    assert isinstance(app, Retrier)
    assert app.group_id == group
    assert sys.path[0] == str(tmp_path.resolve())


@pytest.mark.parametrize("target", ["", "app", "app:", ":retrier", "app.retrier"])
def test_target_must_be_module_colon_attr(target: str) -> None:
    with pytest.raises(AppImportError, match="expected MODULE:ATTR"):
        load_app(target)


def test_missing_module(write_app: Write, tmp_path: Path) -> None:
    name = f"kretry_absent_{uuid.uuid4().hex[:8]}"
    with pytest.raises(AppImportError, match=f"no module named '{name}'"):
        load_app(f"{name}:retrier", tmp_path)
    with pytest.raises(AppImportError, match=f"no module named '{name}.sub'"):
        load_app(f"{name}.sub:retrier", tmp_path)


@pytest.mark.parametrize("attr", ["absent", "holder.absent", "retrier."])
def test_missing_attribute(write_app: Write, tmp_path: Path, attr: str) -> None:
    name = write_app(APP)
    with pytest.raises(AppImportError, match=f"module '{name}' has no attribute '{attr}'"):
        load_app(f"{name}:{attr}", tmp_path)


@pytest.mark.parametrize(("attr", "kind"), [("not_a_retrier", "int"), ("make_wrong", "str")])
def test_not_a_retrier(write_app: Write, tmp_path: Path, attr: str, kind: str) -> None:
    name = write_app(APP)
    with pytest.raises(AppImportError, match=f"is a {kind}, not a kretry.Retrier"):
        load_app(f"{name}:{attr}", tmp_path)


def test_missing_import_inside_the_app_is_not_masked(write_app: Write, tmp_path: Path) -> None:
    missing = f"kretry_dep_{uuid.uuid4().hex[:8]}"
    name = write_app(f"import {missing}\n")
    with pytest.raises(ModuleNotFoundError) as info:
        load_app(f"{name}:retrier", tmp_path)
    assert info.type is ModuleNotFoundError
    assert info.value.name == missing


def test_missing_sibling_inside_a_package_is_not_masked(write_app: Write, tmp_path: Path) -> None:
    package = write_app("import importlib\nimportlib.import_module(__package__ + '.absent')\n", submodule="app")
    with pytest.raises(ModuleNotFoundError) as info:
        load_app(f"{package}.app:retrier", tmp_path)
    assert info.type is ModuleNotFoundError
    assert info.value.name == f"{package}.absent"


def test_missing_submodule_of_a_package(write_app: Write, tmp_path: Path) -> None:
    package = write_app(APP, submodule="app")
    assert load_app(f"{package}.app:retrier", tmp_path).group_id == "svc"
    with pytest.raises(AppImportError, match=f"no module named '{package}.other'"):
        load_app(f"{package}.other:retrier", tmp_path)


def test_other_errors_inside_the_app_propagate(write_app: Write, tmp_path: Path) -> None:
    name = write_app("raise RuntimeError('app is broken')\n")
    with pytest.raises(RuntimeError, match="app is broken"):
        load_app(f"{name}:retrier", tmp_path)
