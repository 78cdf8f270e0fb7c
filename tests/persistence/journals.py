"""The journals every conformance test runs on, made fresh for each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from actorio.persistence import InMemoryJournal, JetStreamJournal, Journal, SqliteJournal

KINDS = ["memory", "sqlite", "jetstream"]


def unique_prefix() -> str:
    """A prefix of streams and buckets of its own, so that tests sharing a server never meet."""
    return "t" + uuid.uuid4().hex[:12]


@asynccontextmanager
async def open_journal(kind: str, tmp_path: Path, nats_url: Callable[[], str]) -> AsyncIterator[Journal]:
    """A journal of ``kind``; ``nats_url`` is called only for JetStream (it starts the server)."""
    journal: Journal
    if kind == "memory":
        journal = InMemoryJournal()
    elif kind == "sqlite":
        journal = SqliteJournal(tmp_path / "journal.sqlite3")
    else:
        journal = await JetStreamJournal.connect(nats_url(), prefix=unique_prefix())
    async with journal:
        yield journal
