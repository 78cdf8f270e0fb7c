"""examples/persistent_account.py runs as its docstring says, on a SQLite file (with nothing but
the standard library: nats-py hidden) and, the same code, on JetStream: the balance outlives each
run."""

from __future__ import annotations

import runpy
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .support import ROOT

EXAMPLE = ROOT / "examples" / "persistent_account.py"


HIDE_NATS = (
    "import runpy, sys\n"
    "sys.modules['nats'] = None  # as if nats-py were not installed\n"
    f"sys.argv = [{str(EXAMPLE)!r}, *sys.argv[1:]]\n"
    f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
    "assert 'nats' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
)
"""Runs the example as its own program would, with nats-py hidden, and checks it was not loaded."""


def run(*arguments: str, without_nats: bool = False) -> subprocess.CompletedProcess[str]:
    program = ["-c", HIDE_NATS] if without_nats else [str(EXAMPLE)]
    return subprocess.run(
        [sys.executable, *program, *arguments],
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
    # On SQLite the first run also shows that it needs nothing but the standard library.
    first = run(where, account, "deposit", "30", "withdraw", "10", "balance", without_nats=kind == "sqlite")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["deposit: balance 30", "withdraw: balance 20", "balance: balance 20"]
    second = run(where, account, "balance", "withdraw", "25")
    assert second.stdout.splitlines() == ["balance: balance 20"]
    assert second.returncode != 0
    assert "InsufficientFunds: balance 20, asked for 25" in second.stderr


def test_without_arguments_it_prints_its_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE)])  # in this process: no program to start
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "python examples/persistent_account.py accounts.sqlite3 alice deposit 30" in str(
        exit_info.value.code
    )
