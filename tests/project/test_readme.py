"""The README's claims that can be checked mechanically: its example is the tested example file,
its quick-start test command is the one CI runs, it stays short, and its links lead somewhere.
(Its commands and code run in tests/docs/test_docs_snippets.py, as every page's do.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_typed_example_is_examples_hello_world_verbatim() -> None:
    assert (ROOT / "examples" / "hello_world.py").read_text() in _python_blocks()


def test_quick_start_test_command_is_what_ci_runs() -> None:
    """CI runs the quick-start test command on every supported Python: nox, whose sessions
    install the dev extra and run ``python -m pytest``."""
    commands = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert "python -m pip install . && python examples/hello_world.py\n" in commands
    assert "python -m pip install -e '.[dev]' && python -m pytest\n" in commands
    assert "python -m pip install -e '.[dev]' && python -m nox\n" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install --quiet --disable-pip-version-check -e '.[dev]'" in ci
    assert "\npython -m nox --non-interactive --error-on-missing-interpreters " in ci
    noxfile = (ROOT / "noxfile.py").read_text()
    session = 'session.install("-e", ".[dev]")\n    session.run("python", "-m", "pytest", *session.posargs)'
    assert session in noxfile


def test_fault_tolerance_snippet_is_from_the_supervision_example() -> None:
    """The fault tolerance guide (docs/fault-tolerance.md, where the README's section moved) shows
    the example file itself (``literalinclude``)."""
    guide = (ROOT / "docs" / "fault-tolerance.md").read_text()
    included = re.findall(r"```\{literalinclude\} (\S+)\n", guide)
    assert [(ROOT / "docs" / path).resolve() for path in included] == [ROOT / "examples" / "supervision.py"]


def test_the_readme_is_for_newcomers_and_short() -> None:
    assert len(README.splitlines()) <= 150


def test_the_readme_links_lead_to_files_of_the_repository() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith("https://")]
    assert "docs/reference/api.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing


def test_the_readme_says_where_to_install_from() -> None:
    """PyPI's ``actorio`` is the original 0.1.4: the README says so, and installs from the clone
    in a virtual environment first."""
    assert "0.1.4" in README
    assert "python3 -m venv .venv" in README
    assert README.index("python3 -m venv .venv") < README.index("python -m pip install .")
