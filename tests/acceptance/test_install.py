"""Cairn as a user gets it: a wheel installed into a fresh environment, run from their project.

The repository's folders (engine/, cli/, schemas/) install as one package, ``cairn``; the
demo ``activities`` package does not install, so a user project with an ``activities``
package of its own gets its own handlers. These tests build the wheel from a copy of the
sources (so the checkout gets no build/ or egg-info), install it into a new virtual
environment, and run ``cairn`` there as a user would: in their project folder, with no
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("engine", "cli", "schemas", "pyproject.toml", "README.md")

HANDLERS = """
from cairn import activity


@activity("Hello")
def hello(params, ctx):
    return {"greeting": "hello " + params["name"] + ", from the user's own activities"}
"""

DEFINITION = """\
Name: hello
Version: 1
StartAt: Greet
States:
  Greet:
    Type: Task
    Activity: Hello
    End: true
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel built from the sources, and a virtual environment it is installed into."""
    base = tmp_path_factory.mktemp("install")
    sources = base / "sources"
    sources.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, sources / name)
    dist = base / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(dist), str(sources))  # fmt: skip
    (wheel,) = dist.glob("cairn-*.whl")
    # The environment sees the packages installed here (SQLAlchemy, PyYAML...), so the test
    # needs no network; cairn itself comes from the wheel, ahead of any other install.
    env_dir = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--ignore-installed", str(wheel))  # fmt: skip
    return wheel, env_dir


def test_the_wheel_holds_one_package_with_its_schema_and_no_demo(
    installed: tuple[Path, Path],
) -> None:
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"cairn"}
    assert "cairn/schemas/definition.schema.json" in names
    assert "cairn/cli/main.py" in names
    assert "cairn/core/decider.py" in names
    assert "cairn/py.typed" in names


def test_cairn_run_in_a_user_project_uses_the_users_own_activities(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, env_dir = installed
    project = _project(tmp_path / "project")
    where = _run(
        str(env_dir / "bin" / "python"), "-c", "import cairn; print(cairn.__file__)", cwd=project
    )
    assert where.strip().startswith(str(env_dir)), where

    out = _run(
        str(env_dir / "bin" / "cairn"),
        "--db",
        f"sqlite:///{tmp_path / 'cairn.db'}",
        "run",
        "hello.yaml",
        "--input",
        '{"name": "ada"}',
        cwd=project,
    )
    assert json.loads(out) == {"greeting": "hello ada, from the user's own activities"}


def test_path_adds_a_folder_to_look_for_activity_modules_in(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, env_dir = installed
    project = _project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cairn = [str(env_dir / "bin" / "cairn"), "--db", f"sqlite:///{tmp_path / 'cairn.db'}"]
    run = [*cairn, "run", str(project / "hello.yaml"), "--input", '{"name": "bob"}']

    refused = _attempt(*run, cwd=elsewhere)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: cannot import activities module 'activities'")
    assert "Traceback" not in refused.stderr

    out = _run(*run, "--path", str(project), cwd=elsewhere)
    assert json.loads(out) == {"greeting": "hello bob, from the user's own activities"}


def _project(folder: Path) -> Path:
    (folder / "activities").mkdir(parents=True)
    (folder / "activities" / "__init__.py").write_text(HANDLERS, encoding="utf-8")
    (folder / "hello.yaml").write_text(DEFINITION, encoding="utf-8")
    return folder


def _environment() -> dict[str, str]:
    """This process's environment less what would point Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CAIRN_ACTIVITIES")}


def _attempt(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=120
    )


def _run(*argv: str, cwd: Path | None = None) -> str:
    completed = _attempt(*argv, cwd=cwd)
    assert completed.returncode == 0, f"{argv} exited {completed.returncode}:\n{completed.stderr}"
    return completed.stdout
