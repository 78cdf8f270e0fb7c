"""docs/performance.md: its Python blocks run, and the commands it gives exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "performance.md").read_text()


def test_the_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    assert blocks
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "young threshold while running: 20000" in done.stdout


def test_the_commands_name_modules_that_exist() -> None:
    modules = set(re.findall(r"python -m (benchmarks(?:\.\w+)?)", PAGE))
    assert modules >= {"benchmarks", "benchmarks.million", "benchmarks.instructions"}
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).exists() or (ROOT / module).is_dir()
