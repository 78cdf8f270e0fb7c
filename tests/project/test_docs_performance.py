"""docs/performance.md: its Python block runs and prints what the page says, and each command it
gives is run (at a small size) by a named test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "performance.md").read_text()

_SMOKE = "tests/project/test_benchmarks.py::test_benchmark_smoke"
_ONLY = "tests/project/test_benchmarks.py::test_benchmark_only"
_MILLION = "tests/project/test_benchmarks.py::test_million_smoke"
_NATS = "tests/nats/test_nats_benchmark.py::test_nats_benchmark_smoke"
_PEERS = "tests/project/test_benchmarks.py::test_peer_programs_build_their_messages_in_the_loop"
_INSTRUCTIONS = "tests/project/test_benchmarks.py::test_instruction_cases_run"

COMMANDS = {
    "python -m benchmarks --no-uvloop": _SMOKE,
    "python -m benchmarks --no-uvloop --only built": _ONLY,
    "python -m benchmarks --no-uvloop --nats": _NATS,
    "python -m benchmarks --no-uvloop --peers": _PEERS,
    "python -m benchmarks.million": _MILLION,
    "python -m benchmarks.million --actors 100000": _MILLION,
    "python -m benchmarks.instructions": _INSTRUCTIONS,
}
"""Each command of the page's ``sh`` block, and the test that runs it at a small size."""


def test_the_python_block_prints_its_text() -> None:
    found = re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", PAGE, re.S)
    assert len(found) == 1
    code, expected = found[0]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


def test_every_command_is_run_by_a_named_test() -> None:
    (block,) = re.findall(r"```sh\n(.*?)```", PAGE, re.S)
    commands = [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert set(commands) == set(COMMANDS)
    for test in set(COMMANDS.values()):
        path, name = test.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), test
