"""`Journal`: the one interface behind which events, snapshots, durable states and reminders are
stored (SQLite in a file, JetStream, memory), and the contract each implementation keeps
(tests/persistence/test_journal_conformance.py checks it against every one)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TypeVar

from typing_extensions import Self

from ._records import EventData, EventRecord, PersistenceId, ReminderRecord, SnapshotRecord, StateRecord

__all__ = ["Journal", "keep_last"]

LAST_KEPT = 100_000
"""Ids whose last sequence a journal keeps between appends (beyond, it forgets them all: each
id forgotten is read again by its next append). It bounds what a journal remembers."""

V = TypeVar("V")


def keep_last(known: dict[PersistenceId, V], persistence_id: PersistenceId, value: V) -> None:
    """Remember ``value`` for ``persistence_id`` in ``known``, which holds at most `LAST_KEPT`
    ids: beyond, it forgets them all (what it knew is read again when needed)."""
    if len(known) >= LAST_KEPT and persistence_id not in known:
        known.clear()
    known[persistence_id] = value


class Journal(ABC):
    """Where persistent actors keep what they must not lose.

    The contract, for every implementation:

    - **Events** of one persistence id are numbered 1, 2, 3, ... `append` writes a batch after
      ``expected_sequence`` (the last number its writer knows) and returns the new last number,
      once the batch is durable (as the implementation defines it: SQLite's file on disk,
      JetStream's acknowledgement). It writes all of the batch or none of it, also if the process
      dies in the middle. If the id's last number is not ``expected_sequence`` (another writer
      appended meanwhile) it raises `WriterConflict` and writes nothing.
    - `read` yields the events after a number, in order; `last_sequence` is the last number (0
      for none).
    - **Snapshots**: `save_snapshot` keeps the latest one per id; `load_snapshot` returns it.
    - **Durable states**: `save_state` writes a whole state if the stored revision is
      ``expected_revision`` (0 for none) and returns the new revision; else `WriterConflict`,
      nothing written.
    - **Reminders**: one per name and id; `save_reminder` replaces, `delete_reminder` removes
      (none is fine), `load_reminders` lists an id's reminders.
    - `persistence_ids` lists the ids that have events, a snapshot, a state or a reminder. An
      id stored that is not a valid `PersistenceId` (storage written by something else) is
      `JournalCorrupted` naming it, never skipped unsaid (`copy_journal` would leave it behind).

    Every method is a coroutine that never blocks the event loop. Use a journal as an async
    context manager, or call `close` when done.
    """

    @abstractmethod
    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        """Write ``events`` as numbers ``expected_sequence + 1, ...``; return the last number."""

    @abstractmethod
    def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        """The events numbered above ``after``, in order."""

    @abstractmethod
    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        """The number of the id's last event, 0 if it has none."""

    @abstractmethod
    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Keep ``snapshot`` as the id's latest snapshot (replacing the one before)."""

    @abstractmethod
    async def load_snapshot(self, persistence_id: PersistenceId) -> SnapshotRecord | None:
        """The id's latest snapshot, or ``None``."""

    @abstractmethod
    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        """Write the id's whole state if its revision is ``expected_revision``; the new revision."""

    @abstractmethod
    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        """The id's state, or ``None`` if none was saved."""

    @abstractmethod
    async def save_reminder(self, reminder: ReminderRecord) -> None:
        """Keep ``reminder`` (replacing the id's reminder of that name)."""

    @abstractmethod
    async def delete_reminder(self, persistence_id: PersistenceId, name: str) -> None:
        """Remove the id's reminder ``name``, if there is one."""

    @abstractmethod
    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        """The id's reminders, by name."""

    @abstractmethod
    async def persistence_ids(self) -> list[PersistenceId]:
        """Every id with events, a snapshot, a state or a reminder, sorted; `JournalCorrupted`
        naming a stored id that is not a valid one."""

    @abstractmethod
    async def close(self) -> None:
        """Release the journal's resources; calls after it fail."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
