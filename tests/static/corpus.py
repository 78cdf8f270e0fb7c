"""The static typing corpus (tests/static/typing/): its files, the ignore comments that mark its
must-fail lines, and its fail files with those comments removed (tests/static/test_typing.py)."""

from __future__ import annotations

import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "typing"

MYPY_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?")
PYRIGHT_IGNORE = re.compile(r"#\s*pyright:\s*ignore(?P<codes>\[[^\]]*\])?")


def corpus_files(prefix: str = "") -> list[Path]:
    return sorted(CORPUS.glob(f"{prefix}*.py"))


def strip_ignores(line: str) -> str:
    return PYRIGHT_IGNORE.sub("", MYPY_IGNORE.sub("", line)).rstrip()


def write_stripped(directory: Path) -> list[Path]:
    """The fail files, their ignore comments removed, written in ``directory`` under their names."""
    stripped: list[Path] = []
    for path in corpus_files("fail_"):
        copy = directory / path.name
        copy.write_text("\n".join(strip_ignores(line) for line in path.read_text().splitlines()) + "\n")
        stripped.append(copy)
    return stripped
