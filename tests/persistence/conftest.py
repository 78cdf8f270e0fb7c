"""Fixtures of the persistence tests: one nats-server for the whole folder, and a fresh journal
of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from actorio.nats import LocalServer
from actorio.persistence import Journal

from .journals import KINDS, open_journal


@pytest.fixture(scope="package")
def nats_url() -> Iterator[str]:
    """One nats-server (JetStream on) for every module of this folder, started when a test first
    needs it: the tests never meet on it, since each uses a stream prefix or persistence ids of
    its own (a test that stops a server starts its own)."""
    with LocalServer() as server:
        yield server.url


@pytest_asyncio.fixture(params=KINDS)
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    """One fresh journal of each kind (memory, SQLite, JetStream against the module's server)."""
    kind: str = request.param
    async with open_journal(kind, tmp_path, lambda: str(request.getfixturevalue("nats_url"))) as opened:
        yield opened
