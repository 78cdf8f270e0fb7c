"""The documentation's Python blocks type-check under the configuration docs/typing.md tells a
user to write (mypy strict with the plugin ``actorio.mypy``, and pyright strict): a snippet a
reader copies into a checked project gets no error but the ones the page means.

Each page's blocks are one module, as tests/docs/run_page.py runs them (top-level ``await``
allowed, lines numbered as on the page); a ``# file: NAME`` block is the module NAME beside it.
pyright's run is shared with tests/project/test_typecheck_outside.py (tests/docs/typing_project.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.pages import blocks
from tests.docs.typing_project import (
    NOT_PYRIGHT,
    NOT_TYPED,
    TYPING_PAGE,
    PyrightRun,
    config,
    run_as_user,
    write_pages,
)

EXPECTED = {
    ("docs/typing.md", "ActorRef's protocol (Greet | Stop) does not accept Other  [actorio-protocol]"),
}
"""The errors a page shows on purpose (page, message)."""

_ERROR = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+): error: (?P<message>.*)$")


@pytest.mark.static
def test_the_python_blocks_type_check_under_the_documented_config(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mypy.ini").write_text(config("ini"))
    modules = write_pages(project, NOT_TYPED)
    command = ["mypy", "--disable-error-code", "top-level-await", "--cache-dir", str(tmp_path / "cache")]
    result = run_as_user([*command, *sorted(modules)], project)
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
def test_the_python_blocks_pass_pyright_strict(docs_pyright: PyrightRun) -> None:
    """From the pyright run shared with tests/project/test_typecheck_outside.py: the pages'
    modules, but those of NOT_TYPED and NOT_PYRIGHT, beside docs/typing.md's program."""
    modules = docs_pyright.modules
    assert not {page for page in modules.values() if page in NOT_TYPED or page in NOT_PYRIGHT}
    errors = docs_pyright.errors(set(modules))
    found = [(modules[Path(e["file"]).name], e["range"]["start"]["line"] + 1, e.get("rule")) for e in errors]
    expected = [("docs/typing.md", line, "reportArgumentType") for line in _lines_sending_other()]
    assert found == expected, [e["message"] for e in errors]


def _lines_sending_other() -> list[int]:
    """The lines of docs/typing.md's program that send Other on purpose."""
    program = next(b for b in blocks(TYPING_PAGE) if b.language == "python")
    return [program.line + n for n, text in enumerate(program.code.splitlines()) if "Other()" in text]
