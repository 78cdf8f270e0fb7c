"""examples/testing_actors.py: its tests run here (imported) and on their own (as the README says),
and the README's "Testing actors" section shows that file verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def _testing_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Testing actors\n(.*?)^## ", readme, re.S | re.M)
    assert match is not None, "README.md has no '## Testing actors' section followed by another"
    return match.group(1)


def test_readme_section_shows_the_example_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _testing_section(), re.S)
    assert EXAMPLE.read_text() in blocks


def test_readme_section_comes_before_benchmarks() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("## Testing actors") < readme.index("## Benchmarks")
    assert "python -m pytest examples/testing_actors.py" in _testing_section()


def test_the_example_runs_on_its_own_as_documented() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/testing_actors.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
