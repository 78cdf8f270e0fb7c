"""examples/persistent_account.py runs as its docstring says, on a SQLite file and, the same code,
on JetStream: the balance outlives each run."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .support import ROOT

EXAMPLE = ROOT / "examples" / "persistent_account.py"


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["sqlite", "jetstream"])
def test_the_balance_outlives_each_run(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    where = (
        str(tmp_path / "accounts.sqlite3") if kind == "sqlite" else str(request.getfixturevalue("nats_url"))
    )
    account = f"alice-{uuid.uuid4().hex[:8]}"
    first = run(where, account, "deposit", "30", "withdraw", "10", "balance")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["deposit: balance 30", "withdraw: balance 20", "balance: balance 20"]
    second = run(where, account, "balance", "withdraw", "25")
    assert second.stdout.splitlines() == ["balance: balance 20"]
    assert second.returncode != 0
    assert "InsufficientFunds: balance 20, asked for 25" in second.stderr


def test_without_arguments_it_prints_its_usage() -> None:
    result = run()
    assert result.returncode != 0
    assert "python examples/persistent_account.py accounts.sqlite3 alice deposit 30" in result.stderr


def test_sqlite_persistence_needs_nothing_but_the_standard_library(tmp_path: Path) -> None:
    """With nats-py missing (as without the ``nats`` extra), the SQLite account still runs."""
    code = (
        "import runpy, sys\n"
        "sys.modules['nats'] = None  # as if nats-py were not installed\n"
        f"sys.argv = ['persistent_account.py', {str(tmp_path / 'a.sqlite3')!r}, 'bob', 'deposit', '7']\n"
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
        "assert 'nats' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "deposit: balance 7\n"
