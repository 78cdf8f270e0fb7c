"""docs/contracts.md runs: its shell blocks (in a scratch directory holding the repository's
examples/, with this Python first on PATH), then its Python blocks, in order, in one namespace,
from that directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "contracts.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def _python_blocks() -> list[str]:
    """The Python blocks, each padded with blank lines so that a traceback gives the page's lines."""
    text = PAGE.read_text()
    blocks: list[str] = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        blocks.append("\n" * text[: match.start(1)].count("\n") + match.group(1))
    return blocks


def test_the_page_has_blocks_of_each_kind() -> None:
    assert len(_blocks("sh")) >= 2
    assert len(_blocks("python")) >= 4


def test_the_code_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs: list[str] = []
    for block in _blocks("sh"):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    # What the page says the compat command prints.
    printed = next(block for block in _blocks("text") if block.startswith("old: hello_world.Greeter"))
    assert printed in outputs

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "examples"))
    page = types.ModuleType("contracts_page")  # pydantic looks the classes' module up
    monkeypatch.setitem(sys.modules, page.__name__, page)
    for block in _python_blocks():
        exec(compile(block, str(PAGE), "exec"), page.__dict__)
