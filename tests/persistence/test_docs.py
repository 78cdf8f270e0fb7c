"""docs/persistence.md's code blocks run, in order, as one program (the JetStream part against
the folder's nats-server), and print what their comments say."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from .support import ROOT

PAGE = ROOT / "docs" / "persistence.md"


def test_the_code_blocks_run_and_print_what_they_say(
    tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 5
    program = tmp_path / "persistence_page.py"
    program.write_text("\n".join(blocks))
    # Run as a program would (its own module, `__main__`), in this process: no interpreter to start.
    monkeypatch.setenv("NATS_URL", nats_url)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(program), run_name="__main__")
    result = capsys.readouterr()
    assert result.out.split("\n") == [
        "18",
        "18",
        "1",
        "WriterConflict",
        "0",
        "5",
        "amount=3 memo=''",
        "2 lines={'tea': 2}",
        "['wake-up']",
        "1",
        "",
    ]
