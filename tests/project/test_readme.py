"""The README's claims that can be checked mechanically: its example is the tested example file,
and its quick-start test command is the one CI runs."""

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
    section = README[README.index("## Fault tolerance") :]
    snippet = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    assert snippet in (ROOT / "examples" / "supervision.py").read_text()
