"""What is particular to the SQLite journal: its work runs off the event loop's thread, its
durability setting is checked, and several appends waiting together share one transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from actorio.persistence import EventData, PersistenceId, SqliteJournal
from actorio.persistence._sqlite import last_sequences_sql

ACCOUNT = PersistenceId("account", "a")


@pytest.mark.asyncio
async def test_every_statement_runs_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[tuple[int, str]] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    async with SqliteJournal(tmp_path / "j.sqlite3") as journal:
        await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 3)
        assert [r.sequence async for r in journal.read(ACCOUNT)] == [1, 2, 3]
        await journal.load_snapshot(ACCOUNT)
    assert any(sql.startswith("INSERT INTO events") for _, sql in statements)
    assert threading.get_ident() not in {thread for thread, _ in statements}


@pytest.mark.asyncio
async def test_appends_made_while_one_is_written_share_the_next_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[str] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    async with SqliteJournal(tmp_path / "j.sqlite3") as journal:
        ids = [PersistenceId("account", f"n{i}") for i in range(200)]
        await asyncio.gather(*(journal.append(i, 0, [EventData("E", 1, b"{}")]) for i in ids))
        assert len(commits) <= 2  # the first append alone, then the 199 that waited for it
        assert [await journal.last_sequence(i) for i in ids] == [1] * 200


def test_the_durability_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be OFF, NORMAL, FULL or EXTRA"):
        SqliteJournal(tmp_path / "j.sqlite3", synchronous="ALWAYS")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_conflict_check_of_a_group_commit_searches_the_key_and_scans_nothing(
    tmp_path: Path,
) -> None:
    """The check reads each id's last sequence through the primary key: its cost does not grow
    with the table (a scan of every event at each commit did)."""
    async with SqliteJournal(tmp_path / "j.sqlite3") as journal:
        await journal.append(PersistenceId("account", "a"), 0, [EventData("E", 1, b"{}")])
    connection = sqlite3.connect(tmp_path / "j.sqlite3")
    try:
        plan = [
            row[3]
            for row in connection.execute("EXPLAIN QUERY PLAN " + last_sequences_sql(3), ["t", "i"] * 3)
        ]
        found = connection.execute(last_sequences_sql(2), ["account", "a", "account", "b"]).fetchall()
    finally:
        connection.close()
    assert any(step.startswith("SEARCH events USING PRIMARY KEY") for step in plan), plan
    assert not any(step.startswith("SCAN events") for step in plan), plan
    assert found == [("account", "a", 1), ("account", "b", None)]


@pytest.mark.asyncio
async def test_a_journal_that_exists_opens_while_another_process_writes_it(tmp_path: Path) -> None:
    """Opening an existing journal takes no write lock (the WAL switch and the schema are the
    first opener's): a second process opening it while another writes without pause was refused
    with "database is locked" once its busy timeout ran out."""
    path = tmp_path / "journal.sqlite3"
    first = SqliteJournal(path)
    await first.load_snapshot(PersistenceId("account", "a"))  # makes the file, in WAL mode
    await first.close()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a busy writer does
        second = SqliteJournal(path, busy_timeout=0.2)
        try:
            assert await second.load_snapshot(PersistenceId("account", "a")) is None
        finally:
            await second.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
