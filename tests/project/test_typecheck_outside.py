"""A typed project outside the repository type-checks against actorio after the README's dev
install (``python -m pip install -e '.[dev]'``, what CI and nox run too): mypy, with the plugin,
and pyright find the package, so types are actorio's and not ``Any``.

setuptools' default editable mode for this layout is an import hook that neither checker follows
("Cannot find implementation or library stub for module named 'actorio'"); pyproject.toml asks for
the strict mode, a link tree on ``sys.path`` through a plain ``.pth`` path. The program and the
configuration files are the ones docs/typing.md shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import Distribution
from pathlib import Path

import pytest

from tests.docs.pages import DOCS, blocks
from tests.docs.typing_project import PROGRAM, PyrightRun

ROOT = Path(__file__).resolve().parents[2]
PAGE = DOCS / "typing.md"
EXPECTED_MYPY = (
    "prog.py:{line}: error: ActorRef's protocol (Greet | Stop) does not accept Other  [actorio-protocol]"
)


def test_the_dev_install_is_editable_in_a_way_type_checkers_follow() -> None:
    # The installed one: the checkout's own actorio.egg-info (from building) is on sys.path too.
    [installed] = Distribution.discover(name="actorio", path=[sysconfig.get_path("purelib")])
    direct_url = json.loads(installed.read_text("direct_url.json") or "{}")
    assert direct_url.get("dir_info", {}).get("editable"), (
        "run the README's `python -m pip install -e '.[dev]'`"
    )
    assert Path(direct_url["url"].removeprefix("file://")).resolve() == ROOT
    pth = [f for f in installed.files or [] if f.name.endswith(".pth")]
    assert pth, installed.files
    lines = Path(str(pth[0].locate())).read_text().split()
    assert not [line for line in lines if line.startswith("import")], "an import hook: mypy cannot follow it"
    assert any((Path(line) / "actorio" / "__init__.py").is_file() for line in lines)
    # Not the checkout itself (setuptools' compat mode), which would make tests/ and examples/ importable.
    assert ROOT not in [Path(line).resolve() for line in lines]


def _project(tmp_path: Path) -> tuple[Path, int]:
    """The docs' program in a directory outside the repository, and its line that sends Other."""
    program = next(b.code for b in blocks(PAGE) if b.language == "python")
    tmp_path.mkdir()
    (tmp_path / "prog.py").write_text(program)
    [line] = [n for n, text in enumerate(program.splitlines(), 1) if "Other()" in text]
    return tmp_path, line


def _check(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command run as a user runs it, the test suite's environment active: on PATH, and nothing
    of the checkout on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.static
def test_a_typed_project_outside_the_repository(
    tmp_path: Path, docs_pyright: PyrightRun, strict_plugin_mypy_cache: Path
) -> None:
    project, line = _project(tmp_path / "project")
    assert not project.is_relative_to(ROOT)
    configs = [b for b in blocks(PAGE) if b.language in ("ini", "toml", "json")]
    ini = [b.code for b in configs if b.language == "ini"]
    toml = [b.code for b in configs if b.language == "toml"]
    [pyright_config] = [b.code for b in configs if b.language == "json"]
    assert len(ini) == 2
    assert len(toml) == 1
    cache = strict_plugin_mypy_cache
    expected = EXPECTED_MYPY.format(line=line)

    for name, config in [("mypy.ini", ini[0]), ("mypy.ini", ini[1]), ("pyproject.toml", toml[0])]:
        for old in ("mypy.ini", "pyproject.toml"):
            (project / old).unlink(missing_ok=True)
        (project / name).write_text(config)
        # The first mypy.ini sets strict itself; the plugin section's two only add the plugin.
        strict = [] if "strict" in config else ["--strict"]
        result = _check(["mypy", *strict, "--cache-dir", str(cache), "prog.py"], project)
        assert result.stdout.splitlines() == [expected, "Found 1 error in 1 file (checked 1 source file)"], (
            name + "\n" + result.stdout + result.stderr
        )

    # pyright, from the run shared with tests/docs/test_docs_typing.py: the same program, as prog.py,
    # under the same configuration, in a project outside the repository too.
    assert not docs_pyright.project.is_relative_to(ROOT)
    assert (docs_pyright.project / PROGRAM).read_text() == (project / "prog.py").read_text()
    assert (docs_pyright.project / "pyrightconfig.json").read_text() == pyright_config
    errors = docs_pyright.errors({PROGRAM})
    assert [(e["range"]["start"]["line"] + 1, e["rule"]) for e in errors] == [(line, "reportArgumentType")], (
        errors
    )
