"""The documentation's Python blocks as a user's project outside the repository, checked by the
type checkers as a user runs them, under the configuration docs/typing.md tells a user to write.

pyright checks, in one run, the pages' blocks (tests/docs/test_docs_typing.py) and docs/typing.md's
program as ``prog.py`` (tests/project/test_typecheck_outside.py): its start-up, reading the
standard library, pydantic and actorio, is most of a run's cost (3.8 s of CPU here for
``prog.py`` alone), so the two tests share the run (the ``docs_pyright`` fixture of
tests/conftest.py), and each reads the errors of its own files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.docs.pages import DOCS, ROOT, blocks, pages

TYPING_PAGE = DOCS / "typing.md"

PROGRAM = "prog.py"
"""docs/typing.md's program, as the page names it."""

NOT_TYPED = {
    "docs/start/migrating.md": "actorio 0.1.4's untyped code, shown as it was written",
    "docs/contracts.md": "successive versions of one protocol, each block redefining its messages",
    "docs/observability.md": "each block a program of its own (run one by one), redefining its names",
}
"""Pages whose blocks are not meant to type-check, and why."""

NOT_PYRIGHT = {
    "docs/nats.md": "top-level await (which pyright refuses in a module) and nats-py's untyped API",
}
"""Pages checked by mypy only, and why."""


def config(language: str) -> str:
    """docs/typing.md's first ``mypy.ini`` (``ini``) or its ``pyrightconfig.json`` (``json``): the
    configuration a user's project gets."""
    return next(b.code for b in blocks(TYPING_PAGE) if b.language == language)


def program() -> str:
    """docs/typing.md's program (its first Python block)."""
    return next(b.code for b in blocks(TYPING_PAGE) if b.language == "python")


def write_pages(project: Path, skip: dict[str, str]) -> dict[str, str]:
    """Each page's blocks as a module in ``project`` (``# file:`` blocks as their own modules),
    but the pages of ``skip``: file name -> page."""
    modules: dict[str, str] = {}
    for page in pages():
        page_id = str(page.relative_to(ROOT))
        code = [b for b in blocks(page) if b.language == "python"]
        if page_id in skip or not code:
            continue
        text = ""
        for block in code:
            first = block.code.partition("\n")[0]
            if first.startswith("# file: "):
                name = first.removeprefix("# file: ").strip()
                assert name not in modules, f"{page_id}: {name} is written by {modules.get(name)} too"
                modules[name] = page_id
                (project / name).write_text(block.code)
                continue
            text += "\n" * (block.line - 1 - text.count("\n")) + block.code
        if text:
            name = "page_" + re.sub(r"\W", "_", page_id.removesuffix(".md")) + ".py"
            modules[name] = page_id
            (project / name).write_text(text)
    assert "page_docs_typing.py" in modules
    return modules


def run_as_user(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command run as a user runs it, the test suite's environment active: on PATH, and nothing
    of the checkout on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@dataclass(frozen=True)
class PyrightRun:
    """pyright's report on a project holding the pages' modules and ``prog.py``."""

    project: Path
    modules: dict[str, str]
    """The pages' modules: file name -> page."""
    report: dict[str, Any]
    """pyright's ``--outputjson`` report."""

    def errors(self, names: set[str]) -> list[dict[str, Any]]:
        """The errors pyright reports in the files of ``names``, in its order."""
        return [
            d
            for d in self.report["generalDiagnostics"]
            if d["severity"] == "error" and Path(d["file"]).name in names
        ]


def run_pyright(project: Path) -> PyrightRun:
    """pyright, under docs/typing.md's ``pyrightconfig.json``, over the pages' modules (but those
    of NOT_TYPED and NOT_PYRIGHT) and ``prog.py``, written in ``project``."""
    (project / "pyrightconfig.json").write_text(config("json"))
    modules = write_pages(project, {**NOT_TYPED, **NOT_PYRIGHT})
    assert PROGRAM not in modules, f"{modules[PROGRAM]} writes {PROGRAM} too"
    (project / PROGRAM).write_text(program())
    result = run_as_user(["pyright", "--outputjson", *sorted(modules), PROGRAM], project)
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"pyright did not report:\n{result.stdout}{result.stderr}") from error
    return PyrightRun(project, modules, report)
