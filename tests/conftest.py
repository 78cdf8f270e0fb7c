"""A strict test runtime: the event loop runs in debug mode, warnings are errors (pyproject),
and every test has a global timeout (pyproject)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from actorio import dead_letters
from actorio.nats import LocalServer, Node
from tests.docs.typing_project import PyrightRun, run_pyright

# Read by asyncio each time a loop is created: every test's loop runs in debug mode.
os.environ["PYTHONASYNCIODEBUG"] = "1"

pytest_plugins = ["tests.distribution"]  # how the tests are shared among xdist's workers


@pytest.fixture(autouse=True)
def fresh_dead_letters() -> Iterator[None]:
    """Each test starts with no dead letters recorded, and leaves none to the next."""
    dead_letters.clear()
    yield
    dead_letters.clear()


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    """A real nats-server (JetStream on, in a temporary directory) for the tests of one module."""
    with LocalServer() as server:
        yield server.url


@pytest_asyncio.fixture
async def node(nats_url: str) -> AsyncIterator[Node]:
    """A node connected to the module's nats-server, closed after the test."""
    async with await Node.connect(nats_url) as client:
        yield client


@pytest_asyncio.fixture
async def raw(nats_url: str) -> AsyncIterator[Client]:
    """A plain nats-py client of the module's nats-server (a spy, or a hostile client that
    writes what it likes), closed after the test."""
    nc = await nats.connect(nats_url)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def docs_pyright(tmp_path_factory: pytest.TempPathFactory) -> PyrightRun:
    """pyright over the documentation's Python blocks and docs/typing.md's program, in a project
    outside the repository: one run for the tests of both (tests/docs/typing_project.py)."""
    return run_pyright(tmp_path_factory.mktemp("docs-pyright"))


@pytest.fixture(scope="session")
def strict_plugin_mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mypy cache for the runs under ``strict = True`` and ``plugins = actorio.mypy`` of
    projects outside the repository (tests/project/test_typecheck_outside.py and
    tests/static/test_nats_stub_client.py): the standard library and pydantic, checked by the
    first run, are read from it by the next (a cold run of docs/typing.md's program took 2.2 s
    of CPU here, one with this cache 0.5 s). mypy checks a module again when its path, contents or
    options differ from the cached ones."""
    return tmp_path_factory.mktemp("mypy-strict-plugin-cache")
