"""How the suite's tests are shared among pytest-xdist's worker processes.

Under ``--dist loadfile`` (pyproject's ``addopts``), the tests of one file run in one worker, so
that its module and session fixtures (a nats-server, the docs site, a build of the package in the
repository) are made once, never twice at the same time. The files that share checker runs
(``SHARED_CHECKER_RUNS``: pyright over the project or the docs, mypy caches) go to one worker
together, so that those runs are made once in all, not once in each worker.

The groups are given to xdist's scheduler, not written into the tests' ids: xdist's own
``xdist_group`` marks (``--dist loadgroup``) work by rewriting each test's id, which pytest 9.2
no longer takes, so that every group was silently spread over every worker (pytest-xdist issue
1386): three pyright runs of about 40 s instead of one, three builds of the docs site.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

SHARED_CHECKER_RUNS = (
    "tests/static/",
    "tests/project/test_typecheck_outside.py",
    "tests/docs/test_docs_typing.py",
)
"""Test files (or folders) whose session fixtures share checker runs: one worker takes them all."""

CHECKER_RUNS_GROUP = "static-checks"


def group_of(nodeid: str) -> str:
    """The group of the test ``nodeid``: its file, or ``CHECKER_RUNS_GROUP`` for the files of
    ``SHARED_CHECKER_RUNS``. All the tests of a group run in one worker, in collection order."""
    path = nodeid.partition("::")[0]
    return CHECKER_RUNS_GROUP if path.startswith(SHARED_CHECKER_RUNS) else path


class GroupScheduling(LoadFileScheduling):
    """xdist's ``loadfile`` scheduling, with the groups of ``group_of``."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> GroupScheduling | None:
    """Under ``--dist loadfile``, schedule by ``group_of``; any other ``--dist`` is xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    return GroupScheduling(config, log)
