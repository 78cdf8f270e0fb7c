"""Every code block of the documentation runs, or is run by a named test.

- ``python`` blocks: each page's run in order, in a fresh directory, by ``run_page.py`` (see its
  docstring: top-level ``await``, ``text`` blocks as expected output, ``# file:`` blocks).
- ``sh`` blocks: each command runs from the repository's root if it is cheap (an example, the
  ``python -m actorio`` inspections); the others (installs, the whole suite, long runs) are
  listed in `COVERED` with the test that runs them.
- Other blocks (configuration files) are listed in `COVERED_BLOCKS` with the test that reads them
  from the page and uses them; ``literalinclude`` shows a file of ``examples/``, where every file
  runs in tests/project/test_examples.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import ROOT, Block, blocks, pages

RUN_PAGE = Path(__file__).with_name("run_page.py")

_WHEEL = "tests/project/test_packaging.py::test_the_wheel_installs_in_a_fresh_venv_and_runs"
_EDITABLE = (
    "tests/project/test_typecheck_outside.py::test_the_dev_install_is_editable_in_a_way_type_checkers_follow"
)
_OUTSIDE = "tests/project/test_typecheck_outside.py::test_a_typed_project_outside_the_repository"
_CI = "tests/project/test_readme.py::test_quick_start_test_command_is_what_ci_runs"

COVERED = {
    "python3 -m venv .venv": _WHEEL,
    ". .venv/bin/activate": _WHEEL,
    "python -m pip install .": _WHEEL,
    "python -m pip install '.[nats]'": _WHEEL,
    "python -m pip install . && python examples/hello_world.py": _WHEEL,
    "python -m pip install -e '.[dev]'": _EDITABLE,
    "python -m pip install -e '.[dev]' && python -m pytest": _CI,
    "python -m pip install -e '.[dev]' && python -m nox": _CI,
    "python -m sphinx -W -b html docs docs/_build/html": (
        "tests/docs/test_docs_build.py::test_the_site_builds_without_a_warning"
    ),
    "python examples/supervision.py --forever": (
        "tests/project/test_examples.py::test_supervision_example_stops_the_whole_tree_on_sigterm"
    ),
    "python -m benchmarks": "tests/project/test_benchmarks.py::test_benchmark_smoke",
    "python examples/distributed/squares.py [nats://host:4222]": (
        "tests/nats/test_nats_example.py::test_squares_pool_example_runs_by_one_command"
    ),
    "python -m actorio stubs --path examples hello_world actor_spawning websocket_json -o stubs": (
        "tests/protocol/test_protocol_stubs.py::test_committed_stubs_are_current"
    ),
    "python -m pytest examples/testing_actors.py": (
        "tests/testing/test_testing_example.py::test_the_example_runs_on_its_own_as_documented"
    ),
}
"""Commands of ``sh`` blocks that are not run here, and the test that runs each."""

COVERED_BLOCKS = {
    ("docs/typing.md", "ini"): _OUTSIDE,
    ("docs/typing.md", "json"): _OUTSIDE,
    ("docs/typing.md", "toml"): _OUTSIDE,
}
"""Blocks that are neither code nor commands (page, language), and the test that uses them."""

OWN_RUNNER = {
    "docs/contracts.md": "tests/contracts/test_docs.py::test_the_code_blocks_run",
    "docs/persistence.md": "tests/persistence/test_docs.py::test_the_code_blocks_run_and_print_what_they_say",
    "docs/observability.md": "tests/telemetry/test_observability_doc.py::test_each_python_block_runs",
    "docs/performance.md": "tests/project/test_docs_performance.py::test_the_python_block_prints_its_text",
}
"""Pages whose blocks (all of them, in order, as one program) are run by a test of their own."""

RUNNABLE = re.compile(r"python (examples/[\w/]+\.py|-m actorio (schema|inspect) .*)")
"""Commands cheap enough to run here."""

DIRECTIVES = {"{toctree}", "{eval-rst}", "{include}", "{literalinclude}"}


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _commands(block: Block) -> list[str]:
    """The commands of an ``sh`` block, comments dropped, as one line each."""
    commands = []
    for line in block.code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(line.split(" #", 1)[0].strip())
    return commands


def _pages() -> list[Path]:
    """The pages whose blocks the tests below run or check."""
    return [page for page in pages() if _page_id(page) not in OWN_RUNNER]


def _test_exists(node: str) -> bool:
    path, _, name = node.partition("::")
    return f"def {name}(" in (ROOT / path).read_text()


@pytest.mark.parametrize(
    "page", [p for p in _pages() if any(b.language == "python" for b in blocks(p))], ids=_page_id
)
def test_the_python_blocks_of_a_page_run(page: Path, tmp_path: Path) -> None:
    chosen = [
        {"page": _page_id(page), "line": b.line, "language": b.language, "code": b.code}
        for b in blocks(page)
        if b.language in ("python", "text")
    ]
    blocks_file = tmp_path / "blocks.json"
    blocks_file.write_text(json.dumps(chosen))
    work = tmp_path / "page"
    work.mkdir()
    # Its own session: whatever a failing page left running (a process it started, a nats-server)
    # is killed with it.
    command = [
        sys.executable,
        "-W",
        "error::DeprecationWarning:__main__",
        str(RUN_PAGE),
        str(blocks_file),
        str(work),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    result = subprocess.CompletedProcess(command, process.returncode, out, err)
    assert result.returncode == 0, result.stdout + result.stderr


def _sh_commands() -> list[tuple[str, str]]:
    return [
        (b.where, command)
        for p in _pages()
        for b in blocks(p)
        if b.language == "sh"
        for command in _commands(b)
    ]


@pytest.mark.parametrize(
    ("where", "command"),
    [c for c in _sh_commands() if RUNNABLE.fullmatch(c[1]) and c[1] not in COVERED],
    ids=lambda v: v,
)
def test_the_cheap_commands_run(where: str, command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "python"
    result = subprocess.run(
        [sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{where}: {command}\n{result.stdout}{result.stderr}"


def test_every_other_command_is_run_by_a_named_test() -> None:
    missing = [
        f"{where}: {command}"
        for where, command in _sh_commands()
        if not RUNNABLE.fullmatch(command) and command not in COVERED
    ]
    assert not missing, "run these here (RUNNABLE) or name the test that runs each (COVERED)"
    named = {*COVERED.values(), *COVERED_BLOCKS.values(), *OWN_RUNNER.values()}
    stale = [node for node in named if not _test_exists(node)]
    assert not stale


def test_every_other_block_is_code_a_command_or_used_by_a_named_test() -> None:
    wrong = []
    for page in _pages():
        previous = ""
        for block in blocks(page):
            code = block.language in ("python", "sh", *DIRECTIVES)
            output = block.language == "text" and previous == "python"
            if not code and not output and (_page_id(page), block.language) not in COVERED_BLOCKS:
                wrong.append(f"{block.where}: a {block.language or 'plain'} block")
            previous = block.language
    assert not wrong


def test_literalinclude_shows_files_that_run_as_examples() -> None:
    shown = [
        (block.where, (block.page.parent / block.argument).resolve())
        for page in _pages()
        for block in blocks(page)
        if block.language == "{literalinclude}"
    ]
    assert shown
    for where, path in shown:
        assert path.is_file(), where
        assert path.parent == ROOT / "examples", f"{where}: {path} is not an example file"
