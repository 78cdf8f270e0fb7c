"""What a user installs: the sdist and the wheel build, their metadata is right and passes
``twine check``, and the wheel installs in a fresh virtual environment, where hello world runs.

The distributions are built once per run: from ``$ACTORIO_DIST`` (a directory holding the sdist
and the wheel that CI builds once for all its Pythons: the wheel is pure Python), or here, once
per session. Building and installing need PyPI (setuptools for the build, pydantic and nats-py
for the install), which pip's cache answers after the first run.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Each test builds, installs or runs in subprocesses given 300 s each; a busy machine needs more
# than the suite's 60 s a test.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with one sdist and one wheel of this checkout."""
    built = os.environ.get("ACTORIO_DIST")
    if built:
        yield Path(built)
        return
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out)  # the wheel from the sdist
    yield out


def _one(dist: Path, pattern: str) -> Path:
    [found] = dist.glob(pattern)
    return found


def test_the_metadata_is_complete_and_passes_twine_check(dist: Path) -> None:
    wheel, sdist = _one(dist, "actorio-*.whl"), _one(dist, "actorio-*.tar.gz")
    _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
    assert metadata["Name"] == "actorio"
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]
    assert metadata["Requires-Python"] == ">=3.10"
    assert {"nats", "dev", "docs"} <= set(metadata.get_all("Provides-Extra", []))
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.startswith("# actorio: typed actors for asyncio")
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "actorio/py.typed" in names
    assert "actorio/nats/__init__.py" in names
    assert "actorio/testing/pytest_plugin.py" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "docs/", "benchmarks/"))]
    with tarfile.open(sdist) as archive:
        members = {Path(m).relative_to(Path(m).parts[0]).as_posix() for m in archive.getnames() if "/" in m}
    assert {"LICENSE", "README.md", "pyproject.toml", "actorio/__init__.py", "actorio/py.typed"} <= members
    # The source tree, for whoever runs the tests or builds the docs from the sdist.
    assert {
        "CHANGELOG.md",
        "mypy.ini",
        "tests/conftest.py",
        "docs/index.md",
        "examples/hello_world.py",
    } <= members
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]


def test_the_wheel_installs_in_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    """What Getting started says, with the wheel that ``pip install '.[nats]'`` builds: a fresh
    virtual environment, the install, then hello world, run away from the checkout."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)  # this pip installs into it (--python)
    python = venv / "bin" / "python"
    wheel = _one(dist, "actorio-*.whl")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", f"{wheel}[nats]")
    program = tmp_path / "hello_world.py"
    program.write_text((ROOT / "examples" / "hello_world.py").read_text())
    result = _run(python, "-I", program, cwd=tmp_path)  # -I: nothing from the environment or the checkout
    assert result.stdout == "Hello World!\n"
    where = _run(python, "-I", "-c", "import actorio, actorio.nats; print(actorio.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv)
