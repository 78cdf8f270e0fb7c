"""What is particular to the SQLite journal: its work runs off the event loop's thread, its
durability setting is checked, and several appends waiting together share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actorio.persistence import (
    EventData,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    SqliteJournal,
    WriterConflict,
)
from actorio.persistence import _sqlite as sqlite_module
from actorio.persistence._sqlite import SCHEMA_VERSION, last_sequences_sql

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


@pytest.mark.asyncio
async def test_an_append_after_another_connection_wrote_the_id_is_a_conflict(tmp_path: Path) -> None:
    """The writer keeps the last sequences it wrote between transactions; a commit by another
    connection (another process's journal) makes it read them again, so a stale expected
    sequence is still a conflict and writes nothing."""
    path = tmp_path / "j.sqlite3"
    event = [EventData("E", 1, b"{}")]
    async with SqliteJournal(path) as first, SqliteJournal(path) as second:
        assert await first.append(ACCOUNT, 0, event) == 1
        assert await first.append(ACCOUNT, 1, event) == 2  # known to the writer: no read
        assert await second.append(ACCOUNT, 2, event) == 3
        with pytest.raises(WriterConflict) as caught:
            await first.append(ACCOUNT, 2, event)
        assert (caught.value.expected, caught.value.found) == (2, 3)
        assert await first.append(ACCOUNT, 3, event) == 4
        with pytest.raises(WriterConflict):
            await second.append(ACCOUNT, 3, event)
    async with SqliteJournal(path) as journal:
        assert [r.sequence async for r in journal.read(ACCOUNT)] == [1, 2, 3, 4]


@pytest.mark.asyncio
async def test_a_failed_transaction_forgets_the_sequences_it_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose transaction fails (here its insert) is not stored, and what the writer
    counted for it is forgotten: the next append of the id still expects the stored sequence."""
    async with SqliteJournal(tmp_path / "j.sqlite3") as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")]) == 1
        # a payload sqlite3 cannot bind: the insert fails
        failing = EventData("E", 1, object())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(PersistenceError, match="Error binding parameter") as raised:
            await journal.append(ACCOUNT, 1, [EventData("E", 1, b"{}"), failing])
        # ProgrammingError from Python 3.11 on, InterfaceError on 3.10
        assert isinstance(raised.value.__cause__, (sqlite3.ProgrammingError, sqlite3.InterfaceError))
        with pytest.raises(WriterConflict):
            await journal.append(ACCOUNT, 3, [EventData("E", 1, b"{}")])
        assert await journal.append(ACCOUNT, 1, [EventData("E", 1, b"{}")]) == 2
        assert [r.sequence async for r in journal.read(ACCOUNT)] == [1, 2]


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


@pytest.mark.asyncio
async def test_a_first_opener_whose_wal_switch_is_refused_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes open a new journal at once: both read the mode (not WAL yet), and this one's
    switch is refused ("database is locked") while the other holds the file. That was reported
    as an error (seen once in four CI runs of the racing writers test); an opener tries again,
    on a new connection, until ``busy_timeout`` has passed, and here the second try finds the
    file free."""
    path = tmp_path / "journal.sqlite3"
    rival = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    checks: list[bool] = []
    real_in_wal = sqlite_module._in_wal

    def in_wal_while_another_opener_holds_the_file(connection: sqlite3.Connection) -> bool:
        if rival.in_transaction:
            rival.execute("ROLLBACK")  # it lets go: the next try finds the file free
        found = real_in_wal(connection)
        if not checks:
            rival.execute("BEGIN EXCLUSIVE")  # the other opener, between this one's check and switch
        checks.append(found)
        return found

    monkeypatch.setattr(sqlite_module, "_in_wal", in_wal_while_another_opener_holds_the_file)
    monkeypatch.setattr(sqlite_module, "monotonic", lambda: 0.0)  # busy_timeout never runs out here
    journal = SqliteJournal(path, busy_timeout=0.05)
    try:
        assert await journal.load_snapshot(PersistenceId("account", "a")) is None
    finally:
        await journal.close()
        rival.close()
    assert checks[0] is False
    assert len(checks) >= 2
    with contextlib.closing(sqlite3.connect(path)) as reader:  # sqlite3's own `with` does not close
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert sqlite_module._schema_version(reader) == str(SCHEMA_VERSION)


def test_an_opener_refused_beyond_busy_timeout_gets_the_error(tmp_path: Path) -> None:
    """The retries are bounded: a file held by another process for longer than ``busy_timeout``
    is reported, not waited on for ever."""
    path = tmp_path / "journal.sqlite3"
    rival = sqlite3.connect(path, isolation_level=None)
    rival.execute("BEGIN EXCLUSIVE")
    journal = SqliteJournal(path, busy_timeout=0.05)
    try:
        with pytest.raises(PersistenceError, match="locked") as raised:
            asyncio.run(journal.load_snapshot(PersistenceId("account", "a")))
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    finally:
        asyncio.run(journal.close())
        rival.execute("ROLLBACK")
        rival.close()


@pytest.mark.asyncio
async def test_another_applications_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A file with tables of its own, none of them the journal's: refused before anything is
    written to it (no WAL switch, no schema)."""
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
        connection.execute("INSERT INTO events (what) VALUES ('kept')")
        connection.commit()
    before = _on_disk(path)
    journal = SqliteJournal(path)
    try:
        with pytest.raises(PersistenceError, match=r"not an actorio journal \(it has tables 'events'"):
            await journal.last_sequence(PersistenceId("account", "a"))
    finally:
        await journal.close()
    assert _on_disk(path) == before


def _on_disk(path: Path) -> tuple[bytes, bool]:
    """A database file's bytes, and whether it has a write-ahead log beside it."""
    return path.read_bytes(), Path(f"{path}-wal").exists()


@pytest.mark.asyncio
async def test_a_read_asks_for_a_few_events_first_then_for_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stops after one event (the read-back of a persist) made the journal load a
    whole page (a thousand events, however large) at once; a whole read still gets every event."""
    monkeypatch.setattr(sqlite_module, "PAGE", 40)
    async with SqliteJournal(tmp_path / "j.sqlite3") as journal:
        await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 100)
        limits: list[object] = []
        query = journal._query  # pyright: ignore[reportPrivateUsage]

        async def spy(sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
            if sql.startswith("SELECT sequence, name"):
                limits.append(parameters[-1])
            return await query(sql, parameters)

        monkeypatch.setattr(journal, "_query", spy)
        async for record in journal.read(ACCOUNT, after=10):
            assert record.sequence == 11
            break
        assert limits == [16]
        limits.clear()
        assert [r.sequence async for r in journal.read(ACCOUNT)] == list(range(1, 101))
        assert limits == [16, 32, 40, 40]


@pytest.mark.asyncio
async def test_a_last_sequence_stored_as_text_is_corrupted_in_bounded_words(tmp_path: Path) -> None:
    """It was a raw ValueError for `last_sequence`, and a `WriterConflict` quoting the whole
    text (a million characters) for an append."""
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])
    with sqlite3.connect(path) as edit:
        edit.execute(
            "INSERT INTO events VALUES ('account', 'a', ?, 'E', 1, x'7b7d', 0.0)", ("z" * 1_000_000,)
        )
    edit.close()
    async with SqliteJournal(path) as journal:
        attempts: list[Callable[[], Awaitable[int]]] = [
            lambda: journal.last_sequence(ACCOUNT),
            lambda: journal.append(ACCOUNT, 1, [EventData("E", 1, b"{}")]),
        ]
        for attempt in attempts:
            with pytest.raises(
                JournalCorrupted, match="account/a: its last stored event's sequence is 'zzz"
            ) as caught:
                await attempt()
            assert len(str(caught.value)) < 1000


@pytest.mark.asyncio
async def test_rows_numbered_0_or_below_are_read_and_reported_not_skipped(tmp_path: Path) -> None:
    """Events are numbered from 1: rows at 0 or below (written by something else) are read from
    the first event on, so recovery reports them, and an id whose last is below 0 is corrupted
    for `last_sequence` and an append (it was taken for a conflict with a writer at -1)."""
    path = tmp_path / "j.sqlite3"
    zero, below = PersistenceId("account", "zero"), PersistenceId("account", "below")
    async with SqliteJournal(path) as journal:
        await journal.append(zero, 0, [EventData("E", 1, b"{}")] * 2)
    with sqlite3.connect(path) as edit:
        for entity_id, sequence in (("zero", 0), ("below", -1), ("below", -(2**63))):
            edit.execute(
                "INSERT INTO events VALUES ('account', ?, ?, 'E', 1, x'7b7d', 0.0)", (entity_id, sequence)
            )
    edit.close()
    async with SqliteJournal(path) as journal:
        assert [r.sequence async for r in journal.read(zero)] == [0, 1, 2]
        assert [r.sequence async for r in journal.read(zero, 1)] == [2]
        assert [r.sequence async for r in journal.read(below)] == [-(2**63), -1]
        assert await journal.last_sequence(zero) == 2
        with pytest.raises(
            JournalCorrupted, match="account/below: its last stored event's sequence is -1, below 1"
        ):
            await journal.last_sequence(below)
        with pytest.raises(JournalCorrupted, match="account/below: its last stored event's sequence is -1"):
            await journal.append(below, 0, [EventData("E", 1, b"{}")])


@pytest.mark.asyncio
async def test_text_that_is_not_utf_8_is_corrupted_not_unreachable(tmp_path: Path) -> None:
    """Python's sqlite3 refuses such text while fetching the row, before the journal sees it: it
    was a `PersistenceError` ("unreachable"), so a supervised actor restarted on it without end
    while its asks waited, and the error quoted the whole text."""
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])
    with sqlite3.connect(path) as edit:
        bad = b"\xff\xfe" + b"A" * 100_000
        edit.execute("UPDATE events SET name = CAST(? AS TEXT)", (bad,))
        edit.execute("INSERT INTO reminders VALUES ('account', 'a', CAST(? AS TEXT), 0.0, x'7b7d')", (bad,))
    edit.close()
    async with SqliteJournal(path) as journal:
        for attempt in (
            lambda: journal.read(ACCOUNT).__anext__(),
            lambda: journal.load_reminders(ACCOUNT),
        ):
            with pytest.raises(JournalCorrupted, match="not UTF-8") as caught:
                await attempt()
            assert len(str(caught.value)) < 1000
            assert caught.value.__cause__ is None


@pytest.mark.asyncio
async def test_a_state_revision_below_1_is_corrupted(tmp_path: Path) -> None:
    """A state's revision counts its saves from 1: one edited to -4 was recovered as it was (and
    the next save wrote -3), one stored as text was a raw ValueError for a save."""
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal(path) as journal:
        assert await journal.save_state(ACCOUNT, 0, 1, b"{}") == 1
    for stored, shown in ((-4, "-4"), (0, "0"), ("two", "'two'")):
        with sqlite3.connect(path) as edit:
            edit.execute("UPDATE states SET revision = ?", (stored,))
        edit.close()
        async with SqliteJournal(path) as journal:
            loaded = "holds \\(str" if isinstance(stored, str) else f"revision is {shown}, not 1 or more"
            with pytest.raises(JournalCorrupted, match=loaded):
                await journal.load_state(ACCOUNT)
            with pytest.raises(JournalCorrupted, match=f"revision is {shown}, not 1 or more"):
                await journal.save_state(ACCOUNT, 1, 1, b"{}")
