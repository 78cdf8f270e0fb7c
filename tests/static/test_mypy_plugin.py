"""The mypy plugin (``actorio.mypy``), run as users run it: ``python -m mypy`` with the plugin in
the config file, on small programs.

The programs are the case files in ``tests/static/mypy_plugin_cases/`` (``*.py.txt``, so that the
project's own mypy, ruff and pytest leave them alone), copied into a temporary directory and
checked in a subprocess with a fresh cache. A trailing ``# E: code`` comment (``# E: code, code``
for two errors) expects errors with those codes on its line: every error mypy reports, in any file,
must be expected by line and code, and every expected one reported. Messages are not compared.

The cases checked with the same configuration are checked by one mypy run (``BATCHES``): mypy
reports each error by file, so each test still asserts on its own case, and an error in any other
file (actorio's own) fails every test of the run. Each run pays mypy's start-up and its reading of
the standard library, pydantic and actorio from the shared cache: 0.3 s to 1.7 s here.

Each case runs on the newest supported mypy (the one installed here) and on the oldest: the lower
bound of the ``mypy`` requirement in pyproject's ``dev`` extra, installed once (with this
environment's pydantic and typing-extensions, and actorio in editable mode) in a virtual
environment under ``build/mypy-oldest/``, reused while its requirements stay the same.
"""

from __future__ import annotations
import __future__

import ast
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.static.file_lock import locked

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "mypy_plugin_cases"
OLDEST_HOME = ROOT / "build" / "mypy-oldest"

# Creating the oldest mypy's environment takes a while (once).
pytestmark = pytest.mark.timeout(900)

Error = tuple[str, int, str]
"""A reported or expected error: file name, line, error code."""

_EXPECTED = re.compile(r"#\s*E:\s*(?P<codes>[a-z][a-z0-9-]*(?:\s*,\s*[a-z][a-z0-9-]*)*)\s*$")
_REPORTED = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)


def expected_errors(path: Path, name: str | None = None) -> list[Error]:
    """The ``# E: code`` expectations of a case file, as errors in ``name`` (its name once copied)."""
    name = name or path.name.removesuffix(".txt")
    errors: list[Error] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(line)
        if match:
            errors.extend((name, number, code.strip()) for code in match["codes"].split(","))
    return sorted(errors)


BATCHES: dict[bool, tuple[str, ...]] = {
    True: ("sends.py.txt", "classes.py.txt", "handlers.py.txt"),
    False: ("sends.py.txt", "handlers.py.txt"),
}
"""The cases checked together, with the plugin (True) and without it (False)."""


@dataclass
class Run:
    errors: list[Error]
    output: str
    log: str

    def describe(self) -> str:
        log = [line for line in self.log.splitlines() if "Metadata fresh" not in line]
        return "mypy's output:\n" + self.output + "\n".join(log[-40:])

    def of(self, name: str, others: Sequence[str]) -> Run:
        """The errors of the case file ``name`` and of every file that is none of ``others``
        (the run's other case files)."""
        errors = [error for error in self.errors if error[0] == name or error[0] not in others]
        return Run(errors, self.output, self.log)


@dataclass
class Mypy:
    """One mypy installation, run as ``python -m mypy`` by its interpreter."""

    python: str
    shared_cache: Path | None = None
    """The cache of the runs given none of their own: the standard library, pydantic and actorio
    are checked once per mypy, not once per case (a case's own modules are checked anew, by
    their paths and contents)."""
    batches: Path | None = None
    """Where the runs of ``BATCHES`` are made, a directory for each configuration."""
    _batch_runs: dict[bool, Run] = field(default_factory=dict[bool, Run])

    def _cache(self, project: Path, plugin: bool) -> Path:
        if self.shared_cache is None:
            return project / ".mypy_cache"
        return self.shared_cache / ("plugin" if plugin else "plain")  # options differ: two caches

    def seed(self, cache: Path) -> None:
        """Start ``cache`` as a copy of the shared cache of the runs with the plugin, where there is
        one: a run given ``cache`` then reads the standard library, pydantic and actorio from it
        (the oldest mypy took 5.9 s here for the incremental test's first run without it)."""
        if self.shared_cache is not None and (self.shared_cache / "plugin").is_dir():
            shutil.copytree(self.shared_cache / "plugin", cache)

    def version(self) -> str:
        result = _run([self.python, "-m", "mypy", "--version"], cwd=ROOT)
        return result.stdout.split()[1]

    def check_case(self, case: str, *, plugin: bool = True) -> Run:
        """mypy's report on ``case`` (one of ``BATCHES[plugin]``), from the one run over that
        batch made by this mypy in this test session."""
        names = [Path(other).name.removesuffix(".txt") for other in BATCHES[plugin]]
        if plugin not in self._batch_runs:
            assert self.batches is not None, "a Mypy of the `mypy` fixture"
            project = self.batches / ("plugin" if plugin else "plain")
            project.mkdir()
            for other in BATCHES[plugin]:
                copy_case(project, other)
            self._batch_runs[plugin] = self.check(project, names, plugin=plugin)
        return self._batch_runs[plugin].of(Path(case).name.removesuffix(".txt"), names)

    def check(
        self,
        project: Path,
        files: Sequence[str],
        *,
        plugin: bool = True,
        cache: Path | None = None,
        verbose: bool = False,
    ) -> Run:
        config = project / ("plugin.ini" if plugin else "plain.ini")
        config.write_text(
            "[mypy]\n"
            "python_version = 3.10\n"
            "strict = True\n"
            "warn_unused_ignores = True\n"
            "warn_unreachable = True\n"
            # mypy cannot see through setuptools' editable installs: it reads actorio from here.
            f"mypy_path = {ROOT}\n" + ("plugins = actorio.mypy\n" if plugin else "")
        )
        command = [
            self.python,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache or self._cache(project, plugin)),
            "--show-error-codes",
            "--no-error-summary",
            "--no-pretty",
            "--no-color-output",
            *(["--verbose"] if verbose else []),
            *files,
        ]
        result = _run(command, cwd=project, check=False)
        if result.returncode not in (0, 1):
            pytest.fail(f"mypy failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
        errors: list[Error] = []
        for line in result.stdout.splitlines():
            match = _REPORTED.match(line)
            if match:  # a case file by its name, another file (actorio's own) by its path
                errors.append((match["path"], int(match["line"]), match["code"] or "(no code)"))
        return Run(sorted(errors), result.stdout, result.stderr)


def _run(command: Sequence[str], *, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MYPYPATH", "MYPY_CACHE_DIR", "MYPY_FORCE_COLOR", "FORCE_COLOR"}
    }
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def declared_mypy_range() -> tuple[str, str]:
    """The ``mypy>=OLDEST,<NEXT`` requirement of pyproject's dev extra."""
    match = re.search(r'"mypy>=([0-9.]+),<([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert match, "pyproject.toml's dev extra should require mypy>=OLDEST,<NEXT"
    return match[1], match[2]


def _line_of(text: str, path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def _release(text: str) -> tuple[int, int, int]:
    major, minor, patch = [*(int(part) for part in re.findall(r"\d+", text)[:3]), 0, 0][:3]
    return major, minor, patch


@pytest.fixture(scope="session")
def oldest_mypy() -> Mypy:
    oldest, _ = declared_mypy_range()
    requirements = [
        f"mypy=={oldest}",
        f"pydantic=={version('pydantic')}",
        f"typing-extensions=={version('typing-extensions')}",
    ]
    environment = OLDEST_HOME / f"py{sys.version_info[0]}{sys.version_info[1]}"
    python = environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = environment / "actorio-test-requirements.txt"
    wanted = "\n".join([*requirements, f"-e {ROOT}"]) + "\n"
    OLDEST_HOME.mkdir(parents=True, exist_ok=True)
    with locked(OLDEST_HOME / "lock"):
        if not (python.exists() and stamp.is_file() and stamp.read_text() == wanted):
            shutil.rmtree(environment, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(environment)], cwd=ROOT)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run([*pip, *requirements], cwd=ROOT)
            _run([*pip, "--no-deps", "-e", str(ROOT)], cwd=ROOT)
            stamp.write_text(wanted)
    return Mypy(str(python))


@pytest.fixture(scope="session")
def newest_mypy(tmp_path_factory: pytest.TempPathFactory) -> Mypy:
    return Mypy(sys.executable, tmp_path_factory.mktemp("mypy-newest-cache"))


@pytest.fixture(params=["newest", "oldest"])
def mypy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Mypy:
    """The newest supported mypy (installed here), then the oldest; each with its shared cache
    and its directory for the batched cases."""
    chosen: Mypy = request.getfixturevalue(f"{request.param}_mypy")
    if chosen.shared_cache is None:
        chosen.shared_cache = tmp_path_factory.mktemp(f"mypy-{request.param}-cache")
    if chosen.batches is None:
        chosen.batches = tmp_path_factory.mktemp(f"mypy-{request.param}-cases")
    return chosen


def copy_case(project: Path, case: str, as_name: str | None = None) -> str:
    source = CASES / case
    name = as_name or Path(case).name.removesuffix(".txt")
    shutil.copyfile(source, project / name)
    return name


# -- the supported range ------------------------------------------------------------------------


@pytest.mark.static
def test_the_mypys_tested_are_the_ends_of_the_declared_range(oldest_mypy: Mypy) -> None:
    oldest, following = declared_mypy_range()
    assert _release(oldest_mypy.version()) == _release(oldest)
    newest = Mypy(sys.executable).version()
    assert _release(oldest) <= _release(newest) < _release(following), (
        f"the installed mypy {newest} is outside the declared range >={oldest},<{following}"
    )


# -- sends ------------------------------------------------------------------------------------


@pytest.mark.static
def test_sends_outside_the_protocol_are_actorio_protocol_errors(mypy: Mypy) -> None:
    run = mypy.check_case("sends.py.txt")
    assert run.errors == expected_errors(CASES / "sends.py.txt"), run.describe()


@pytest.mark.static
def test_without_the_plugin_the_same_sends_are_arg_type_errors(mypy: Mypy) -> None:
    run = mypy.check_case("sends.py.txt", plugin=False)
    plain = [
        (file, line, "arg-type" if code == "actorio-protocol" else code)
        for file, line, code in expected_errors(CASES / "sends.py.txt")
    ]
    assert run.errors == sorted(plain), run.describe()


# -- classes ----------------------------------------------------------------------------------


@pytest.mark.static
def test_actor_classes_are_checked_against_their_protocol(mypy: Mypy) -> None:
    run = mypy.check_case("classes.py.txt")
    assert run.errors == expected_errors(CASES / "classes.py.txt"), run.describe()


@pytest.mark.parametrize("case", ["classes.py.txt", "persistence.py.txt"])
def test_the_class_checks_mirror_those_made_at_class_creation(case: str) -> None:
    """Run a case of classes: each top-level class whose bases could be created raises TypeError
    exactly where the plugin is expected to report `actorio-handler`."""
    source = (CASES / case).read_text()
    expected = {line for _, line, code in expected_errors(CASES / case) if code == "actorio-handler"}
    module = types.ModuleType("actorio_mypy_plugin_classes_case")
    sys.modules[module.__name__] = module
    raised: set[int] = set()
    created: set[int] = set()
    try:
        for statement in ast.parse(source).body:
            code = compile(
                ast.Module(body=[statement], type_ignores=[]),
                case.removesuffix(".txt"),
                "exec",
                flags=__future__.annotations.compiler_flag,
                dont_inherit=True,
            )
            try:
                exec(code, module.__dict__)
            except TypeError:
                raised.add(statement.lineno)
            except NameError:
                assert isinstance(statement, ast.ClassDef), ast.dump(statement)  # its base failed
            else:
                if isinstance(statement, ast.ClassDef):
                    created.add(statement.lineno)
    finally:
        del sys.modules[module.__name__]
    assert raised, "the case should have classes that fail at creation"
    assert {line for line in expected if line in raised | created} == raised


# -- incremental runs -------------------------------------------------------------------------


@pytest.mark.static
def test_incremental_runs_read_the_base_actors_from_the_cache(mypy: Mypy, tmp_path: Path) -> None:
    """The second run checks only the changed module: its classes are checked against the handlers
    recorded for the unchanged base module's actors in mypy's cache. The third run changes the
    base module only, and the unchanged subclasses are checked again."""
    cache = tmp_path / ".mypy_cache"
    mypy.seed(cache)  # the case's own modules are not in it: the first run checks them
    base = copy_case(tmp_path, "incremental/greeters.py.txt")
    users = copy_case(tmp_path, "incremental/users_v1.py.txt", "users.py")
    files = [base, users]

    first = mypy.check(tmp_path, files, cache=cache)
    assert first.errors == expected_errors(CASES / "incremental/users_v1.py.txt", users), first.describe()

    copy_case(tmp_path, "incremental/users_v2.py.txt", users)
    second = mypy.check(tmp_path, files, cache=cache, verbose=True)
    v2_expected = expected_errors(CASES / "incremental/users_v2.py.txt", users)
    assert second.errors == v2_expected, second.describe()
    assert f"Parsing {users}" in second.log, second.describe()
    assert f"Parsing {base}" not in second.log, "the base module should come from the cache"

    # GreetHandler, the base module's last class, now handles Stop as well: OnlyStop keeps one
    # error (its inherited Greet handler is outside its protocol), not two, and JustGreet gets one
    # (its inherited Stop handler is outside its protocol).
    with (tmp_path / base).open("a") as module:
        module.write("\n    @handles(Stop)\n    async def on_stop(self, msg: Stop) -> None:\n        pass\n")
    third = mypy.check(tmp_path, files, cache=cache, verbose=True)
    v3_expected = list(v2_expected)
    v3_expected.remove(
        (users, _line_of("class OnlyStop(", CASES / "incremental/users_v2.py.txt"), "actorio-handler")
    )
    v3_expected.append(
        (users, _line_of("class JustGreet(", CASES / "incremental/users_v2.py.txt"), "actorio-handler")
    )
    v3_expected.sort()
    assert third.errors == v3_expected, third.describe()
    assert f"Parsing {users}" in third.log, third.describe()


# -- handlers of several types ------------------------------------------------------------------


@pytest.mark.static
def test_a_handler_must_return_every_reply_type_of_its_messages(mypy: Mypy) -> None:
    run = mypy.check_case("handlers.py.txt")
    assert run.errors == expected_errors(CASES / "handlers.py.txt"), run.describe()


@pytest.mark.static
def test_without_the_plugin_a_narrower_return_type_passes(mypy: Mypy) -> None:
    run = mypy.check_case("handlers.py.txt", plugin=False)
    assert run.errors == [], run.describe()


@pytest.mark.static
def test_an_event_sourced_actor_naming_its_events_needs_apply(newest_mypy: Mypy, tmp_path: Path) -> None:
    name = copy_case(tmp_path, "persistence.py.txt")
    run = newest_mypy.check(tmp_path, [name], cache=tmp_path / ".mypy_cache")
    assert run.errors == expected_errors(CASES / "persistence.py.txt"), run.describe()
    assert "NoApply names its events but defines no apply(state, event)" in run.output
