"""The static typing corpus (tests/static/typing/), checked by mypy and pyright as part of the test suite.

``pass_*.py`` files are ``assert_type(...)`` checks that must pass. ``fail_*.py`` files hold
must-fail lines, each marked with both mypy's ``# type: ignore[code]`` and pyright's
``# pyright: ignore[rule]``: mypy's ``warn_unused_ignores`` and pyright's
``reportUnnecessaryTypeIgnoreComment`` (with ``enableTypeIgnoreComments = false``, so each checker
reads only its own comments) turn a misuse that a checker stops catching into a failure here.

mypy runs with tests/static/typing/mypy.ini (the root settings, without the plugin, so that the error
codes are plain mypy's); pyright with the root pyproject.toml. As a checker reports nothing, and
so no unused ignore, in code it considers unreachable, one test also checks the fail files with
their ignore comments removed: each marked line must then get exactly the codes it lists.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.static.corpus import CORPUS, MYPY_IGNORE, PYRIGHT_IGNORE, corpus_files
from tests.static.file_lock import locked
from tests.static.project_pyright import PyrightReport

ROOT = Path(__file__).resolve().parents[2]
MYPY_CONFIG = CORPUS / "mypy.ini"
CORPUS_CACHE = ROOT / ".mypy_cache" / "typing-corpus"  # MYPY_CONFIG's cache_dir
CORPUS_CACHE_LOCK = ROOT / ".mypy_cache" / "typing-corpus.lock"
"""Held exclusively by the corpus run, which writes CORPUS_CACHE, and shared by its copiers: a copy
taken while mypy writes the cache's SQLite files fails (their write-ahead logs come and go) or is
torn."""

MUST_FAIL_MINIMUM = 40

Marks = dict[tuple[str, int], frozenset[str]]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def _codes(match: re.Match[str] | None) -> frozenset[str]:
    if match is None or match.group("codes") is None:
        return frozenset()
    return frozenset(code.strip() for code in match.group("codes")[1:-1].split(",") if code.strip())


def _marks() -> tuple[Marks, Marks]:
    """The must-fail lines of the fail files: (file name, line) -> mypy codes, and -> pyright rules."""
    mypy_marks: Marks = {}
    pyright_marks: Marks = {}
    for path in corpus_files("fail_"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            mypy_match = MYPY_IGNORE.search(line)
            pyright_match = PYRIGHT_IGNORE.search(line)
            if mypy_match and pyright_match:
                mypy_marks[path.name, number] = _codes(mypy_match)
                pyright_marks[path.name, number] = _codes(pyright_match)
    return mypy_marks, pyright_marks


def test_corpus_is_there() -> None:
    names = [path.name for path in corpus_files()]
    assert any(name.startswith("pass_") for name in names), names
    assert any(name.startswith("fail_") for name in names), names
    assert all(name.startswith(("pass_", "fail_")) for name in names), names
    assert not (CORPUS / "__init__.py").exists()


@pytest.mark.static
def test_mypy_accepts_the_corpus() -> None:
    with locked(CORPUS_CACHE_LOCK):
        result = _run(sys.executable, "-m", "mypy", "--config-file", str(MYPY_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    checked = re.search(r"no issues found in (\d+) source files", result.stdout)
    assert checked is not None, result.stdout
    assert int(checked.group(1)) == len(corpus_files()), result.stdout


@pytest.mark.static
@pytest.mark.timeout(300)  # the first to ask runs pyright over the project
def test_pyright_accepts_the_corpus(pyright_report: PyrightReport) -> None:
    """From the project's pyright run (tests/static/conftest.py), which includes the corpus."""
    assert all(pyright_report.covers(path) for path in corpus_files()), pyright_report.include
    assert not pyright_report.errors(CORPUS), "\n".join(pyright_report.errors(CORPUS))


def test_every_ignore_comment_is_a_complete_must_fail_mark() -> None:
    """A line marked for one checker only is a half-checked misuse; a bare ignore hides anything;
    pass files carry no ignore at all."""
    problems: list[str] = []
    for path in corpus_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            mypy_match = MYPY_IGNORE.search(line)
            pyright_match = PYRIGHT_IGNORE.search(line)
            where = f"{path.name}:{number}: {line.strip()}"
            if not (mypy_match or pyright_match):
                continue
            if path.name.startswith("pass_"):
                problems.append(f"{where}  (an ignore comment in a pass file)")
            elif not (mypy_match and pyright_match):
                problems.append(f"{where}  (needs both # type: ignore[...] and # pyright: ignore[...])")
            elif not (_codes(mypy_match) and _codes(pyright_match)):
                problems.append(f"{where}  (an ignore without [codes])")
    assert not problems, "\n".join(problems)


def test_there_are_enough_must_fail_lines() -> None:
    mypy_marks, _ = _marks()
    per_file: dict[str, int] = defaultdict(int)
    for name, _number in mypy_marks:
        per_file[name] += 1
    assert len(mypy_marks) >= MUST_FAIL_MINIMUM, dict(per_file)
    assert all(per_file[path.name] > 0 for path in corpus_files("fail_")), dict(per_file)


def _mypy_errors(files: list[Path], cache: Path) -> tuple[Marks, str]:
    """mypy's errors in ``files``, under the corpus's configuration. ``cache`` starts as a copy of
    the corpus run's cache, where there is one: the standard library, pydantic and actorio, under
    the same options, then come from it (3.1 s of CPU without it, 0.2 s with it, here); the fail
    files, at other paths and with other contents, are checked anew."""
    with locked(CORPUS_CACHE_LOCK, shared=True):
        if CORPUS_CACHE.is_dir():
            shutil.copytree(CORPUS_CACHE, cache)
    result = _run(
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(MYPY_CONFIG),
        "--cache-dir",
        str(cache),
        "--show-error-codes",
        *map(str, files),
    )
    errors: dict[tuple[str, int], set[str]] = defaultdict(set)
    for line in result.stdout.splitlines():
        match = re.match(r"(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$", line)
        if match:
            errors[Path(match["file"]).name, int(match["line"])].add(match["code"])
    return {key: frozenset(codes) for key, codes in errors.items()}, result.stdout + result.stderr


def _pyright_errors(report: PyrightReport, directory: Path) -> tuple[Marks, str]:
    """pyright's errors in ``directory``, from the project's run (tests/static/conftest.py), which
    also checks the stripped fail files: the project's configuration is the corpus's, strict,
    and its one rule beyond (reportUnnecessaryTypeIgnoreComment) has no comment left to report."""
    errors: dict[tuple[str, int], set[str]] = defaultdict(set)
    for diagnostic in report.diagnostics:
        if diagnostic["severity"] == "error" and Path(diagnostic["file"]).parent == directory.resolve():
            # pyright's lines are 0-based.
            key = (Path(diagnostic["file"]).name, diagnostic["range"]["start"]["line"] + 1)
            errors[key].add(diagnostic.get("rule", "<no rule>"))
    return {key: frozenset(rules) for key, rules in errors.items()}, report.output


def _compare(expected: Marks, actual: Marks) -> list[str]:
    problems: list[str] = []
    for key in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(key, frozenset()), actual.get(key, frozenset())
        if want != got:
            problems.append(f"{key[0]}:{key[1]}: marked {sorted(want)}, reported {sorted(got)}")
    return problems


@pytest.mark.static
@pytest.mark.timeout(300)  # the first to ask runs pyright over the project
def test_must_fail_lines_fail_without_their_ignores(
    tmp_path: Path, stripped_fail_files: list[Path], pyright_report: PyrightReport
) -> None:
    """With the ignore comments removed, each marked line gets exactly the codes it lists in each
    checker, and no other line gets any: no misuse hides in code a checker skipped as unreachable."""
    mypy_marks, pyright_marks = _marks()
    stripped = stripped_fail_files
    assert [path.name for path in stripped] == [path.name for path in corpus_files("fail_")]

    mypy_errors, mypy_output = _mypy_errors(stripped, tmp_path / "mypy-cache")
    pyright_errors, pyright_output = _pyright_errors(pyright_report, stripped[0].parent)
    mypy_problems = _compare(mypy_marks, mypy_errors)
    pyright_problems = _compare(pyright_marks, pyright_errors)
    report = ["mypy:", *mypy_problems, "pyright:", *pyright_problems]
    if mypy_problems:
        report += ["", mypy_output]
    if pyright_problems:
        report += ["", pyright_output]
    assert not mypy_problems, "\n".join(report)
    assert not pyright_problems, "\n".join(report)


STATIC_ONLY = {"pass_handlers.py"}
"""Pass files that show signatures side by side and are not meant to run (see their docstring)."""


@pytest.mark.parametrize(
    "path", sorted(p for p in CORPUS.glob("pass_*.py") if p.name not in STATIC_ONLY), ids=lambda p: p.name
)
def test_pass_files_are_valid_at_run_time(path: Path) -> None:
    """What the checkers accept must also be accepted at class creation."""
    runpy.run_path(str(path), run_name="typing_pass_file")
