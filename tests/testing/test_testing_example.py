"""examples/testing_actors.py: its tests run here (imported) and on their own (as the docs say),
and the docs' "Testing actors" page (docs/testing.md) shows that file verbatim."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.support import run_python

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE = EXAMPLES / "testing_actors.py"

# examples/ holds scripts, not a package: import them by file name.
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from testing_actors import (  # noqa: E402, F401 - collected and run here
    test_each_request_is_answered_by_its_worker,
    test_manager_hands_the_request_to_a_new_worker,
)


def _testing_page() -> str:
    return (ROOT / "docs" / "testing.md").read_text()


def test_docs_page_shows_the_example_verbatim() -> None:
    """The page includes the file itself (``literalinclude``), so it cannot drift from it."""
    included = re.findall(r"```\{literalinclude\} (\S+)\n", _testing_page())
    assert [(ROOT / "docs" / path).resolve() for path in included] == [EXAMPLE]


def test_docs_page_says_how_to_run_the_example() -> None:
    assert "python -m pytest examples/testing_actors.py" in _testing_page()


def test_the_example_runs_on_its_own_as_documented() -> None:
    # -n 0: in this process, not in two more workers beside the suite's own.
    result = run_python(
        ROOT, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "examples/testing_actors.py"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
