"""`SqliteJournal`: the embedded journal, one SQLite file (the standard library's ``sqlite3``, no
server), worked by one thread of its own so that the event loop never waits on the disk, with
group commit: the appends that arrive while one transaction is being written go together in the
next one."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any, Literal, TypeGuard, TypeVar

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError, WriterConflict
from ._journal import LAST_KEPT, Journal
from ._records import EventData, EventRecord, PersistenceId, ReminderRecord, SnapshotRecord, StateRecord

__all__ = ["SqliteJournal"]

T = TypeVar("T")

SCHEMA_VERSION = 1
PAGE = 1000
"""Events read per round trip to the journal's thread, at most."""
FIRST_PAGE = 16
"""Events read by a read's first round trip; each next one reads twice as many, up to `PAGE`: a
reader that stops early (the read-back of a persist) pays for a few events, not a page."""
_OPEN_RETRY_PAUSE = 0.01
"""Seconds between two tries to open a journal another process holds."""

_READ_FIRST = (
    "SELECT sequence, name, version, payload, written FROM events "
    "WHERE entity_type = ? AND entity_id = ? ORDER BY sequence LIMIT ?"
)
_READ_AFTER = (
    "SELECT sequence, name, version, payload, written FROM events "
    "WHERE entity_type = ? AND entity_id = ? AND sequence > ? ORDER BY sequence LIMIT ?"
)
_LAST = "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE entity_type = ? AND entity_id = ?"


def _bad_last(persistence_id: PersistenceId, last: object) -> JournalCorrupted:
    """The error for an id whose greatest stored sequence is not an integer, or is below 0 (a row
    written by something else: SQLite orders text after every number)."""
    what = "below 1" if type(last) is int else "not an integer"
    return JournalCorrupted(
        f"{persistence_id}: its last stored event's sequence is {_short_repr(last)}, {what}"
    )


def _is_last(last: object) -> TypeGuard[int]:
    """Whether ``last``, the greatest sequence stored for an id, can be one (0: none stored)."""
    return type(last) is int and last >= 0


def _short_repr(value: object) -> str:
    """``repr(value)`` within bounds, without making the whole of a large text or blob first."""
    if isinstance(value, (str, bytes)) and len(value) > 1000:
        return f"{shorten(repr(value[:1000]))}... ({len(value)} long)"
    return shorten(repr(value))


def last_sequences_sql(ids: int) -> str:
    """The query of the last sequence of ``ids`` ids at once (parameters: type, id, type, id, ...).

    A correlated MAX: one search of the primary key per id. (A ``WHERE (type, id) IN (VALUES ...)
    GROUP BY`` scanned the whole table at every commit: 127 ms per commit of 400 ids on a table
    of 80,000 events, against 2.7 ms for this; tests/persistence/test_sqlite_journal.py checks
    the plan.)"""
    values = ", ".join(["(?, ?)"] * ids)
    return (
        "SELECT v.column1, v.column2, (SELECT MAX(sequence) FROM events "
        "WHERE entity_type = v.column1 AND entity_id = v.column2) "
        f"FROM (VALUES {values}) AS v"
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS actorio_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    name TEXT NOT NULL, version INTEGER NOT NULL, payload BLOB NOT NULL, written REAL NOT NULL,
    PRIMARY KEY (entity_type, entity_id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    version INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (entity_type, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS states (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, revision INTEGER NOT NULL,
    version INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (entity_type, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reminders (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, name TEXT NOT NULL,
    due REAL NOT NULL, message BLOB NOT NULL, PRIMARY KEY (entity_type, entity_id, name)
) WITHOUT ROWID;
"""

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_Append = tuple[PersistenceId, int, Sequence[EventData], "asyncio.Future[int]"]


class SqliteJournal(Journal):
    """A `Journal` in one SQLite file (made if missing), in WAL mode.

    Durability: an append returns once its transaction is committed with ``PRAGMA synchronous``
    set to ``synchronous`` (``"FULL"`` by default: the write-ahead log is synced to disk at each
    commit, so an acknowledged event survives a crash of the process and of the machine;
    ``"NORMAL"`` survives a crash of the process, ``kill -9`` included, but may lose the last
    commits if the machine loses power). Each append is all or nothing (it is in one
    transaction). Several processes may open one file: SQLite's lock orders their writes, and
    the expected sequence is checked inside the transaction, so two writers of one id never both
    append.

    Group commit: appends made while a transaction is being written are written together in the
    next transaction (a conflict in one does not fail the others), so a thousand actors
    persisting at once cost a few syncs, not a thousand.

    All work runs on one thread of the journal's own: no call blocks the event loop.
    ``busy_timeout`` is how many seconds a write waits for another process's lock, and how long
    opening the journal keeps trying while other processes open it too.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "FULL", busy_timeout: float = 5.0
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actorio-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._pending: list[_Append] = []
        self._last: dict[tuple[str, str], int] = {}
        """(type, id) -> its last sequence, as of ``_data_version`` (on the journal's thread only)."""
        self._data_version: object = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # -- the journal's thread ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        """A connection to the journal, in WAL mode, with the schema.

        Processes opening a new journal at the same moment race to switch it to WAL and to write
        the schema; a loser is refused ("database is locked"), sometimes at once (SQLite refuses
        rather than risk a deadlock), and the connection that was refused may still see the mode
        it read before. So a refused opening is tried again on a new connection until
        ``busy_timeout`` has passed since the first try."""
        deadline = monotonic() + self.busy_timeout
        while True:
            # isolation_level=None: no implicit transactions, ours are explicit (BEGIN IMMEDIATE).
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(connection)
            except sqlite3.OperationalError as error:
                connection.close()
                if "locked" not in str(error) or monotonic() >= deadline:
                    raise
                time.sleep(_OPEN_RETRY_PAUSE)  # on the journal's thread, not the event loop's
                continue
            except BaseException:
                connection.close()
                raise
            return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Switch to WAL and write the schema if nobody did; check the schema's version."""
        # WAL is kept in the file: only its first opener switches to it. The switch wants an
        # exclusive lock, which another process writing the journal without pause can keep from
        # it beyond busy_timeout; reading the mode does not.
        in_wal = _in_wal(connection)
        _check_not_foreign(connection, self.path)  # before anything is written to the file
        if not in_wal:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        found = _schema_version(connection)
        if found is None:  # a new journal: its first opener writes the schema (idempotent)
            connection.executescript(_SCHEMA)
            connection.execute(
                "INSERT OR IGNORE INTO actorio_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            found = _schema_version(connection)
        if found is None or int(found) != SCHEMA_VERSION:
            raise PersistenceError(
                f"{self.path}: journal schema version {found}, this actorio reads {SCHEMA_VERSION}"
            )

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on the journal's thread. SQLite's own errors ("database is locked"
        past ``busy_timeout``, a disk error) are raised as `PersistenceError`: the transaction
        they ended was rolled back, and the persistent actors read back what is stored."""
        if self._closed:
            raise RuntimeError("the journal is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: work(self._connect()))
        except sqlite3.Error as error:
            if str(error).startswith("Could not decode to UTF-8"):  # Python's, reading a row
                raise JournalCorrupted(
                    f"{self.path}: a stored row holds text that is not UTF-8 (in {shorten(str(error))}):"
                    " the file was changed by something else"
                ) from None  # (its text may be large: not kept)
            raise PersistenceError(f"{self.path}: {error}") from error

    async def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """The rows of one statement, run on the journal's thread."""
        return await self._run(lambda connection: connection.execute(sql, parameters).fetchall())

    def _write(self, connection: sqlite3.Connection, batch: list[_Append]) -> list[int | BaseException]:
        """One transaction for the whole batch: each append checked against its id's last
        sequence (and against the appends before it in the batch), the rows of those that pass
        in one ``executemany``. A failure of the statements fails the whole transaction, so each
        append is still all or nothing.

        The last sequences are read inside the transaction (which holds the write lock), from
        the table for the ids this connection does not know, else from what this connection
        wrote last: ``PRAGMA data_version`` changes when any other connection, of this process or
        another, has committed since, and then everything known is forgotten and read again."""
        connection.execute("BEGIN IMMEDIATE")
        last = self._last
        try:
            ((version,),) = connection.execute("PRAGMA data_version").fetchall()
            if version != self._data_version or len(last) > LAST_KEPT:
                last.clear()
                self._data_version = version
            keys = list({key: None for p, *_ in batch if (key := (p.entity_type, p.entity_id)) not in last})
            for start in range(0, len(keys), 400):
                chunk = keys[start : start + 400]
                found = connection.execute(
                    last_sequences_sql(len(chunk)), [part for key in chunk for part in key]
                ).fetchall()
                last.update(((t, i), 0 if n is None else n) for t, i, n in found)
            now = time.time()
            rows: list[tuple[object, ...]] = []
            results: list[int | BaseException] = []
            for persistence_id, expected, events, _ in batch:
                key = (persistence_id.entity_type, persistence_id.entity_id)
                current = last[key]
                if not _is_last(current):
                    results.append(_bad_last(persistence_id, current))
                    continue
                if current != expected:
                    results.append(WriterConflict(str(persistence_id), expected, current))
                    continue
                entity_type, entity_id = key
                rows += [
                    (entity_type, entity_id, expected + n, e.name, e.version, e.payload, now)
                    for n, e in enumerate(events, 1)
                ]
                expected += len(events)
                last[key] = expected
                results.append(expected)
            connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            last.clear()  # it may hold sequences of a transaction that did not commit
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return results

    # -- appends: group commit -------------------------------------------------------------

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        if self._closed:
            raise RuntimeError("the journal is closed")
        if not events:
            last = await self.last_sequence(persistence_id)
            if last != expected_sequence:
                raise WriterConflict(str(persistence_id), expected_sequence, last)
            return last
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((persistence_id, expected_sequence, list(events), future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush(), name="actorio-sqlite-commit")
        return await future

    async def _flush(self) -> None:
        """Write what is pending, then what came meanwhile, until nothing is pending."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._run(functools.partial(self._write, batch=batch))
                except BaseException as error:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(
                                error if isinstance(error, Exception) else PersistenceError(repr(error))
                            )
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (*_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller was cancelled: what was written stays written
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None

    # -- reads and the rest ----------------------------------------------------------------

    async def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        key = (persistence_id.entity_type, persistence_id.entity_id)
        page = FIRST_PAGE
        # From the first event, every row of the id: those numbered 0 or below (written by
        # something else) too, for recovery to report rather than skip.
        bound: int | None = after if after > 0 else None
        while True:
            rows: list[tuple[int, str, int, bytes, float]] = await self._query(
                _READ_FIRST if bound is None else _READ_AFTER,
                (*key, page) if bound is None else (*key, bound, page),
            )
            for row in rows:
                _check_row(persistence_id, "event", row, _EVENT_ROW)
                sequence, name, version, payload, written = row
                yield EventRecord(persistence_id, sequence, name, version, payload, float(written))
            if len(rows) < page:
                return
            bound, page = rows[-1][0], min(2 * page, PAGE)

    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        key = (persistence_id.entity_type, persistence_id.entity_id)
        ((last,),) = await self._query(_LAST, key)
        if not _is_last(last):
            raise _bad_last(persistence_id, last)
        return last

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        row = (
            snapshot.persistence_id.entity_type,
            snapshot.persistence_id.entity_id,
            snapshot.sequence,
            snapshot.version,
            snapshot.payload,
        )
        await self._query("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)", row)

    async def load_snapshot(self, persistence_id: PersistenceId) -> SnapshotRecord | None:
        key = (persistence_id.entity_type, persistence_id.entity_id)
        row: tuple[int, int, bytes] | None = await self._run(
            lambda c: c.execute(
                "SELECT sequence, version, payload FROM snapshots WHERE entity_type = ? AND entity_id = ?",
                key,
            ).fetchone()
        )
        if row is None:
            return None
        _check_row(persistence_id, "snapshot", row, _SNAPSHOT_ROW)
        return SnapshotRecord(persistence_id, *row)

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        key = (persistence_id.entity_type, persistence_id.entity_id)

        def write(connection: sqlite3.Connection) -> int:
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT revision FROM states WHERE entity_type = ? AND entity_id = ?", key
                ).fetchone()
                revision = 0 if row is None else _stored_revision(persistence_id, row[0])
                if revision != expected_revision:
                    raise WriterConflict(str(persistence_id), expected_revision, revision)
                connection.execute(
                    "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?, ?)",
                    (*key, revision + 1, version, payload),
                )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return revision + 1

        return await self._run(write)

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        key = (persistence_id.entity_type, persistence_id.entity_id)
        rows: list[tuple[int, int, bytes]] = await self._query(
            "SELECT revision, version, payload FROM states WHERE entity_type = ? AND entity_id = ?", key
        )
        if not rows:
            return None
        _check_row(persistence_id, "state", rows[0], _SNAPSHOT_ROW)
        _stored_revision(persistence_id, rows[0][0])
        return StateRecord(persistence_id, *rows[0])

    async def save_reminder(self, reminder: ReminderRecord) -> None:
        row = (
            reminder.persistence_id.entity_type,
            reminder.persistence_id.entity_id,
            reminder.name,
            reminder.due,
            reminder.message,
        )
        await self._query("INSERT OR REPLACE INTO reminders VALUES (?, ?, ?, ?, ?)", row)

    async def delete_reminder(self, persistence_id: PersistenceId, name: str) -> None:
        key = (persistence_id.entity_type, persistence_id.entity_id, name)
        await self._run(
            lambda c: c.execute(
                "DELETE FROM reminders WHERE entity_type = ? AND entity_id = ? AND name = ?", key
            )
        )

    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        key = (persistence_id.entity_type, persistence_id.entity_id)
        rows: list[tuple[str, float, bytes]] = await self._query(
            "SELECT name, due, message FROM reminders WHERE entity_type = ? AND entity_id = ? ORDER BY name",
            key,
        )
        reminders: list[ReminderRecord] = []
        for row in rows:
            name, due, message = row
            _check_row(persistence_id, f"reminder {shorten(repr(name))}", row, _REMINDER_ROW)
            try:
                reminders.append(ReminderRecord(persistence_id, name, due, message))
            except ValueError as error:
                raise JournalCorrupted(f"{persistence_id}: a stored reminder: {error}") from None
        return reminders

    async def persistence_ids(self) -> list[PersistenceId]:
        rows: list[tuple[str, str]] = await self._query(
            "SELECT entity_type, entity_id FROM events UNION SELECT entity_type, entity_id FROM snapshots "
            "UNION SELECT entity_type, entity_id FROM states "
            "UNION SELECT entity_type, entity_id FROM reminders ORDER BY 1, 2"
        )
        try:
            return [PersistenceId(t, i) for t, i in rows]
        except ValueError as error:
            raise JournalCorrupted(f"{self.path}: a stored persistence id: {error}") from None

    async def close(self) -> None:
        """Wait for the pending appends, close the file and the journal's thread."""
        if self._closed:
            return
        if self._flusher is not None:
            await self._flusher
        self._closed = True
        connection = self._connection
        loop = asyncio.get_running_loop()
        if connection is not None:
            await loop.run_in_executor(self._executor, connection.close)
        self._connection = None
        self._executor.shutdown(wait=False)


_EVENT_ROW = (int, str, int, bytes, (int, float))
"""The types of an event row as read (sequence, name, version, payload, written)."""
_SNAPSHOT_ROW = (int, int, bytes)
"""The types of a snapshot row (sequence, version, payload), and of a state row (revision,
version, payload)."""
_REMINDER_ROW = (str, (int, float), bytes)
"""The types of a reminder row (name, due, message)."""


def _check_row(
    persistence_id: PersistenceId, what: str, row: Sequence[object], types: Sequence[type | tuple[type, ...]]
) -> None:
    """`JournalCorrupted` if a row read is not of the types this journal writes (the file was
    edited, or written by something else): said here, not as a ``TypeError`` deep in a codec."""
    for value, kind in zip(row, types, strict=True):
        if not isinstance(value, kind):
            found = ", ".join(type(value).__name__ for value in row)
            raise JournalCorrupted(
                f"{persistence_id}: a stored {what} row holds ({found}), not the types this journal "
                "writes: the file was changed by something else"
            )


def _stored_revision(persistence_id: PersistenceId, value: object) -> int:
    """A stored state's revision, which counts its saves from 1: `JournalCorrupted` if it does
    not (it was taken for a conflict, or recovered and saved again below 1)."""
    if type(value) is not int or value < 1:
        raise JournalCorrupted(
            f"{persistence_id}: its stored state's revision is {shorten(repr(value))}, not 1 or more"
        )
    return value


def _check_not_foreign(connection: sqlite3.Connection, path: str) -> None:
    """`PersistenceError` for a database of something else: tables, and none of them the journal's
    ``actorio_meta`` (made first of the schema's tables). Its file is left as it is."""
    tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if tables and "actorio_meta" not in tables:
        shown = ", ".join(repr(str(name)[:64]) for name in tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise PersistenceError(f"{path}: not an actorio journal (it has tables {shown}, and no actorio_meta)")


def _in_wal(connection: sqlite3.Connection) -> bool:
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    return str(mode).lower() == "wal"


def _schema_version(connection: sqlite3.Connection) -> str | None:
    """The journal's schema version, or ``None`` for a file without the schema yet. A read: a
    journal that exists is opened without a write lock, which another process writing it without
    pause could keep from this one beyond ``busy_timeout``."""
    try:
        row = connection.execute("SELECT value FROM actorio_meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        return None
    return None if row is None else str(row[0])
