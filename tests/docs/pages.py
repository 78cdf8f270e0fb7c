"""The code blocks of the documentation: the pages (README.md, CHANGELOG.md, CONTRIBUTING.md and
every Markdown page of docs/) and the fenced blocks in them, with the line each starts on."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.S | re.M,
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    """The line of the page where the block's code starts (1-based)."""
    language: str
    """The fence's language (``python``, ``sh``, ...), or the MyST directive (``{toctree}``)."""
    argument: str
    """What follows the language on the fence line (a directive's argument)."""
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every page of the documentation, the README first."""
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md"]
    found += sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    return found


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order (indented ones, in list items, dedented)."""
    text = page.read_text()
    found: list[Block] = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip()
        language, _, argument = info.partition(" ")
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Block(page, line, language, argument.strip(), textwrap.dedent(match["body"])))
    return found
