"""docs/persistence.md's code blocks run, in order, as one program (the JetStream part against
the module's nats-server), and print what their comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .support import ROOT

PAGE = ROOT / "docs" / "persistence.md"


def test_the_code_blocks_run_and_print_what_they_say(tmp_path: Path, nats_url: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 5
    program = tmp_path / "persistence_page.py"
    program.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env={**os.environ, "NATS_URL": nats_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [
        "18",
        "18",
        "1",
        "WriterConflict",
        "0",
        "5",
        "amount=3 memo=''",
        "['wake-up']",
        "1",
        "",
    ]
