"""The cluster example runs by its one documented command: three host processes, one killed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.nats_support.processes import ROOT


@pytest.mark.timeout(120)
def test_bank_accounts_example_runs_by_one_command() -> None:
    result = subprocess.run(
        [sys.executable, "examples/cluster/bank.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "30 accounts on 3 host processes of 3"
    assert lines[1].startswith("killed host ")
    assert lines[2].startswith("all 30 accounts answered again within ")
    assert " moved to the other hosts with their balances, " in lines[3]
