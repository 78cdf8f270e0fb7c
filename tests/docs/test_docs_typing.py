"""The documentation's Python blocks type-check under the configuration docs/typing.md tells a
user to write (mypy strict with the plugin ``actorio.mypy``, and pyright strict): a snippet a
reader copies into a checked project gets no error but the ones the page means.

Each page's blocks are one module, as tests/docs/run_page.py runs them (top-level ``await``
allowed, lines numbered as on the page); a ``# file: NAME`` block is the module NAME beside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import DOCS, ROOT, blocks, pages

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

EXPECTED = {
    ("docs/typing.md", "ActorRef's protocol (Greet | Stop) does not accept Other  [actorio-protocol]"),
}
"""The errors a page shows on purpose (page, message)."""

_ERROR = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+): error: (?P<message>.*)$")


def _config(language: str) -> str:
    """docs/typing.md's first ``mypy.ini`` (``ini``) or its ``pyrightconfig.json`` (``json``): the
    configuration a user's project gets."""
    return next(b.code for b in blocks(DOCS / "typing.md") if b.language == language)


def _write_pages(project: Path, skip: dict[str, str]) -> dict[str, str]:
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


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A checker run as a user runs it: this environment first on PATH, nothing of the checkout
    on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.static
def test_the_python_blocks_type_check_under_the_documented_config(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mypy.ini").write_text(_config("ini"))
    modules = _write_pages(project, NOT_TYPED)
    command = ["mypy", "--disable-error-code", "top-level-await", "--cache-dir", str(tmp_path / "cache")]
    result = _run([*command, *sorted(modules)], project)
    errors = [m for m in map(_ERROR.match, result.stdout.splitlines()) if m]
    assert errors or result.returncode == 0, result.stdout + result.stderr
    found = {(modules[m["file"]], m["message"]) for m in errors}
    unexpected = sorted(
        f"{modules[m['file']]}:{m['line']}: {m['message']}"
        for m in errors
        if (modules[m["file"]], m["message"]) not in EXPECTED
    )
    assert not unexpected
    assert found == EXPECTED


@pytest.mark.static
def test_the_python_blocks_pass_pyright_strict(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyrightconfig.json").write_text(_config("json"))
    modules = _write_pages(project, {**NOT_TYPED, **NOT_PYRIGHT})
    result = _run(["pyright", "--outputjson", *sorted(modules)], project)
    report = json.loads(result.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    found = [(modules[Path(e["file"]).name], e["range"]["start"]["line"] + 1, e.get("rule")) for e in errors]
    expected = [("docs/typing.md", line, "reportArgumentType") for line in _lines_sending_other()]
    assert found == expected, [e["message"] for e in errors]


def _lines_sending_other() -> list[int]:
    """The lines of docs/typing.md's program that send Other on purpose."""
    program = next(b for b in blocks(DOCS / "typing.md") if b.language == "python")
    return [program.line + n for n, text in enumerate(program.code.splitlines()) if "Other()" in text]
