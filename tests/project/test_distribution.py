"""The suite's tests are shared among xdist's workers by file, and the files that share checker
runs go to one worker together (tests/distribution.py), with the pytest and pytest-xdist
installed here: a pytest run in a subprocess, two workers, on files laid out as the suite's."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tests.distribution import CHECKER_RUNS_GROUP, group_of
from tests.support import run_python

ROOT = Path(__file__).resolve().parents[2]

FILES = (
    "tests/static/test_checks.py",
    "tests/project/test_typecheck_outside.py",
    "tests/docs/test_docs_typing.py",
    "tests/nats/test_first.py",
    "tests/nats/test_second.py",
)

TEST_FILE = """\
import os

import pytest


@pytest.mark.parametrize("n", range(8))
def test_records_its_worker(n: int) -> None:
    with open({seen!r}, "a") as seen:
        seen.write(f"{{__file__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
"""

CONFTEST = """\
import sys

sys.path.insert(0, {root!r})  # the repository's tests.distribution
pytest_plugins = ["tests.distribution"]
"""


def test_each_file_and_the_shared_checker_runs_go_to_one_worker(tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    for name in FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TEST_FILE.format(seen=str(seen)))
    (tmp_path / "conftest.py").write_text(CONFTEST.format(root=str(ROOT)))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # none of the repository's options
    options = ["-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile", "--import-mode", "importlib"]
    result = run_python(tmp_path, "-m", "pytest", *options, "-q", *FILES)
    assert result.returncode == 0, result.stdout + result.stderr

    workers: defaultdict[str, set[str]] = defaultdict(set)
    for line in seen.read_text().splitlines():
        file, worker = line.rsplit(" ", 1)
        workers[Path(file).relative_to(tmp_path).as_posix()].add(worker)
    assert sorted(workers) == sorted(FILES)
    assert all(len(each) == 1 for each in workers.values()), dict(workers)
    checker_runs = {name for name in FILES if group_of(f"{name}::test") == CHECKER_RUNS_GROUP}
    assert len(checker_runs) == 3
    assert len({worker for name in checker_runs for worker in workers[name]}) == 1, dict(workers)
    # Both workers had work: the groups were shared among them, not all given to one.
    assert len(set().union(*workers.values())) == 2, dict(workers)


def test_the_groups() -> None:
    assert group_of("tests/static/test_typing.py::test_a[x::y]") == CHECKER_RUNS_GROUP
    assert group_of("tests/docs/test_docs_typing.py::test_a") == CHECKER_RUNS_GROUP
    assert group_of("tests/docs/test_docs_build.py::test_a") == "tests/docs/test_docs_build.py"
    assert group_of("tests/nats/test_x.py::TestA::test_b") == "tests/nats/test_x.py"
