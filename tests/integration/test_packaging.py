"""The wheel, installed as a user installs it: a fresh venv, dependencies from the package index, no source tree.

Needs the network (pip resolves the dependencies from PyPI, the build backend too); marked `packaging`, so
`pytest -m "not packaging"` leaves it out where there is none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kretry import __version__
from tests.integration.workers import ROOT

NewTopic = Callable[..., str]
# Building the wheel and fetching its dependencies; a cold pip cache on a slow link takes a few minutes.
INSTALL_TIMEOUT = 480

APP = """
from kretry import Retrier

retrier = Retrier(group_id="shop-svc")

@retrier.handler({topic!r}, delays=["5s", "1m"])
def handle(msg):
    pass
"""


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
    )
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.packaging
@pytest.mark.timeout(INSTALL_TIMEOUT * 2 + 60)
def test_the_wheel_installs_in_a_fresh_venv_and_runs(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    src, dist, venv, app = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "app"
    # Built from a copy: setuptools reuses a build/ directory, and one left in the tree by an older build would
    # put modules deleted since into the wheel.
    shutil.copytree(ROOT / "kretry", src / "kretry", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, src, cwd=tmp_path)
    (wheel,) = dist.glob("kretry-*.whl")
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)  # no --system-site-packages: nothing borrowed
    _run(venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", wheel, cwd=tmp_path)

    # Far from the source tree, with no PYTHONPATH: only the installed package can answer.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRETRY_", "PYTHON"))}
    env["KRETRY_BOOTSTRAP_SERVERS"] = bootstrap
    app.mkdir()
    topic = new_topic("shop", partitions=2)
    (app / "shop.py").write_text(APP.format(topic=topic))
    kretry = venv / "bin" / "kretry"
    assert _run(kretry, "--version", cwd=app, env=env).strip() == f"kretry {__version__}"
    where = _run(venv / "bin" / "python", "-c", "import kretry; print(kretry.__file__)", cwd=app, env=env)
    assert where.startswith(str(venv)), where
    plan = _run(kretry, "topics", "plan", "shop:retrier", cwd=app, env=env)
    rows = [line.split()[:3] for line in plan.splitlines()[1:]]
    assert rows[:3] == [[topic, "main", "2"], [f"{topic}_retry_1", "retry", "2"], [f"{topic}_retry_2", "retry", "2"]]
