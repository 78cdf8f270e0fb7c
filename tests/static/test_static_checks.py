"""The typing and lint gates run as tests, so that the one test command checks everything.

mypy (strict, with warn_unused_ignores and warn_unreachable, from mypy.ini) covers actorio/,
tests/, examples/ and benchmarks/; pyright (strict, from pyproject.toml) covers actorio/,
examples/, the typing corpus and the test kit's typing test, in one run that the tests on the
last two share (conftest.py); ruff covers the whole tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.static.project_pyright import PyrightReport

# The checkers take about 20 s of CPU each here, and a minute or more of wall time on a busy
# machine: more than the suite's 60 s per test (their subprocesses have their own bound).
pytestmark = [pytest.mark.static, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_mypy_strict_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyright_strict_is_clean(pyright_report: PyrightReport) -> None:
    # Exit status 1: errors, which the stripped fail files of the shared run have (2 and 3: pyright
    # or its configuration failed); none may be in the project.
    assert pyright_report.returncode in (0, 1), pyright_report.output
    assert not pyright_report.errors(ROOT), "\n".join(pyright_report.errors(ROOT))


def test_ruff_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
