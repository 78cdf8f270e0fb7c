"""The distributed example runs, by its one documented command, starting its own nats-server."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.nats_support.processes import ROOT


@pytest.mark.timeout(90)
def test_squares_pool_example_runs_by_one_command() -> None:
    result = subprocess.run(
        [sys.executable, "examples/distributed/squares.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "100 squares from 3 worker processes:"
    counts = [int(match.group(1)) for line in lines[1:] if (match := re.search(r": (\d+)$", line))]
    assert len(counts) == 3
    assert sum(counts) == 100
