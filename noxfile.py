"""The test suite on every supported Python: ``python -m nox``.

Each session installs the ``dev`` extra into its own virtualenv and runs ``python -m pytest``
there; arguments after ``--`` go to pytest (``python -m nox -- -x tests/test_watch.py``). One
Python only: ``python -m nox -p 3.12``.

Interpreters are found as nox finds them (``python3.12`` on ``PATH``). Where they are pyenv
versions, pyenv's shim for ``python3.12`` answers only while a 3.12 is an active pyenv version,
so the newest installed pyenv version of each supported Python is made active for the run (after
those active already). A Python that is not installed is skipped with a message, or fails the run
under CI (``CI`` set) and with ``--error-on-missing-interpreters``. nox never downloads one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""The supported Pythons: ``requires-python`` in pyproject.toml, up to the newest tested."""

nox.options.sessions = ["tests"]
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _pyenv(*args: str) -> list[str]:
    """What ``pyenv *args`` prints, split on whitespace and colons; nothing if it fails."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return []
    try:
        done = subprocess.run([pyenv, *args], capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.replace(":", " ").split()


def _activate_pyenv_versions() -> None:
    """Make pyenv's shims answer for each of PYTHONS that pyenv has installed (PYENV_VERSION)."""
    installed = _pyenv("versions", "--bare", "--skip-aliases", "--skip-envs")
    if not installed:
        return
    active = _pyenv("version-name")
    newest: dict[str, tuple[int, str]] = {}
    for name in installed:
        match = re.fullmatch(r"(3\.\d+)\.(\d+)", name)  # CPython X.Y.Z: no -dev, t or conda builds
        if match and match[1] in PYTHONS and int(match[2]) >= newest.get(match[1], (-1, ""))[0]:
            newest[match[1]] = (int(match[2]), name)
    added = [name for _, name in newest.values() if name not in active]
    if added:
        os.environ["PYENV_VERSION"] = ":".join([*active, *added])


_activate_pyenv_versions()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Install ``.[dev]`` and run the whole suite (``python -m pytest``, extra arguments passed on)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)
