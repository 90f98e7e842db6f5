"""A wheel built from the repository installs one namespace, ``clmmd``, and runs from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
PACKAGE_DIRS = ("service", "scheduler", "agent", "env", "artifacts")


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path
    names: list[str]  # what the wheel put into site-packages


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv with only the wheel installed into it.

    The dependencies come from this test run's environment through a plain path entry
    (a ``.pth`` line), which adds the directory but runs none of its own ``.pth`` hooks:
    the editable install of the working tree stays out of the fresh interpreter."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in (*PACKAGE_DIRS, "pyproject.toml", "README.md"):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    wheels = root / "wheels"
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("clmmd-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    installed_names = sorted(p.name for p in site.iterdir())
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Installed(venv, site, installed_names)


def test_wheel_installs_only_the_clmmd_namespace(installed: Installed) -> None:
    names = installed.names
    assert [n for n in names if not n.startswith("clmmd")] == []
    assert "clmmd" in names
    assert any(n.startswith("clmmd-") and n.endswith(".dist-info") for n in names)


def test_clmmd_help_runs_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    venv = installed.venv
    result = subprocess.run(
        [str(venv / "bin" / "clmmd"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "campaign" in result.stdout


@pytest.mark.parametrize("name", PACKAGE_DIRS)
def test_bare_package_names_are_not_importable(
    installed: Installed, tmp_path: Path, name: str
) -> None:
    venv = installed.venv
    probe = f"import {name}"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr
    ok = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import clmmd.{name}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr


def test_shipped_data_files_are_in_the_wheel(
    installed: Installed,
) -> None:
    site = installed.site
    assert (site / "clmmd" / "scheduler" / "queries.toml").is_file()
    # Every registry entry's DuneSQL, and the table list the SQL tests check it against.
    shipped = sorted(p.name for p in (site / "clmmd" / "scheduler" / "queries").iterdir())
    in_repo = sorted(p.name for p in (REPO / "scheduler" / "queries").iterdir() if p.is_file())
    assert shipped == in_repo and sum(n.endswith(".sql") for n in shipped) >= 25
    for name in PACKAGE_DIRS:
        assert (site / "clmmd" / name / "py.typed").is_file()
