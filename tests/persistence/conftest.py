"""Fixtures of the persistence tests: a fresh journal of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from actorio.persistence import Journal

from .journals import KINDS, open_journal


@pytest_asyncio.fixture(params=KINDS)
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    """One fresh journal of each kind (memory, SQLite, JetStream against the module's server)."""
    kind: str = request.param
    async with open_journal(kind, tmp_path, lambda: str(request.getfixturevalue("nats_url"))) as opened:
        yield opened
