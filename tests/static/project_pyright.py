"""pyright strict over the project, as pyproject.toml configures it: run once per test session
(the ``pyright_report`` fixture of conftest.py) for the tests that assert on its files.

pyright's start-up (node, then the standard library, pydantic and actorio read and bound) is most
of what a run costs. The tests on the typing corpus and on the test kit's types each ran pyright
on their files (8.5 s and 4.8 s of CPU here, beside 20.8 s for the project); the project's run
now includes both, for no measurable cost, and each test reads the errors of its own files.
The corpus's fail files with their ignore comments removed (which must get errors) are checked
in the same run, from a directory outside the repository: 5.5 s of CPU on their own, 1.5 s more
in the project's run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PyrightReport:
    """pyright strict over the files that pyproject.toml's ``[tool.pyright]`` includes, and over
    the files of a directory outside the repository (``beside``)."""

    returncode: int
    output: str
    include: tuple[str, ...]
    diagnostics: tuple[dict[str, Any], ...]

    def covers(self, path: Path) -> bool:
        """Whether ``path`` is in one of the included files or folders (so pyright checked it)."""
        relative = path.resolve().relative_to(ROOT)
        return any(relative.is_relative_to(entry) for entry in self.include)

    def errors(self, under: Path = ROOT) -> list[str]:
        """The errors reported in ``under`` (a file or a folder; the whole project by default), as
        ``path:line: message [rule]``."""
        return [
            f"{diagnostic['file']}:{diagnostic['range']['start']['line'] + 1}: "
            f"{diagnostic['message']} [{diagnostic.get('rule', '<no rule>')}]"
            for diagnostic in self.diagnostics
            if diagnostic["severity"] == "error" and Path(diagnostic["file"]).is_relative_to(under.resolve())
        ]


def run_pyright(*, beside: Path) -> PyrightReport:
    """pyright's report on the project and, under the project's configuration, on the files of
    ``beside``, a directory outside the repository (a test fails if pyright does not report)."""
    # The first line of [tool.pyright], a list of double-quoted strings: JSON as well as TOML
    # (tomllib is not in Python 3.10).
    found = re.search(r"^\[tool\.pyright\]\ninclude = (\[.*\])$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert found, "pyproject.toml's [tool.pyright] should open with its include list"
    include: list[str] = json.loads(found[1])
    # Paths given on the command line replace the configuration's include (its exclude still
    # applies). --pythonpath: resolve third-party imports (nats-py) in the environment running the
    # tests, not in whichever interpreter comes first on PATH.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            *include,
            str(beside),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright did not report (exit {result.returncode}):\n{output}")
    return PyrightReport(result.returncode, output, tuple(include), tuple(report["generalDiagnostics"]))
