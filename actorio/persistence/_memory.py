"""`InMemoryJournal`: a journal in a dict, for tests (the test kit's journal), and `copy_journal`,
which copies what one journal holds into another (a production journal into memory, to replay it
under the mock clock)."""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator, Sequence

from ._errors import WriterConflict, out_of_order
from ._journal import Journal
from ._records import EventData, EventRecord, PersistenceId, ReminderRecord, SnapshotRecord, StateRecord

__all__ = ["InMemoryJournal", "copy_journal"]


class InMemoryJournal(Journal):
    """A `Journal` in memory: the same contract as the others (the conformance tests run on it),
    durable as long as the object lives. Appends are atomic because nothing else runs while one
    is written (no ``await`` inside). For tests: share one between the incarnations of an actor
    to test its recovery."""

    def __init__(self) -> None:
        self.events: dict[PersistenceId, list[EventRecord]] = {}
        self.snapshots: dict[PersistenceId, SnapshotRecord] = {}
        self.states: dict[PersistenceId, StateRecord] = {}
        self.reminders: dict[PersistenceId, dict[str, ReminderRecord]] = {}
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the journal is closed")

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        self._check_open()
        stored = self.events.setdefault(persistence_id, [])
        last = stored[-1].sequence if stored else 0
        if last != expected_sequence:
            raise WriterConflict(str(persistence_id), expected_sequence, last)
        now = time.time()
        stored.extend(
            EventRecord(persistence_id, expected_sequence + i, e.name, e.version, e.payload, now)
            for i, e in enumerate(events, start=1)
        )
        return expected_sequence + len(events)

    async def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        """The events after ``after``, by their numbers (those `copy_journal` kept included); from
        the first (``after`` 0), every record of the id, numbered as they are."""
        self._check_open()
        stored = self.events.get(persistence_id, [])
        start = 0 if after <= 0 else bisect.bisect_right(stored, after, key=_sequence)
        for record in stored[start:]:
            yield record

    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        self._check_open()
        stored = self.events.get(persistence_id)
        return stored[-1].sequence if stored else 0

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._check_open()
        self.snapshots[snapshot.persistence_id] = snapshot

    async def load_snapshot(self, persistence_id: PersistenceId) -> SnapshotRecord | None:
        self._check_open()
        return self.snapshots.get(persistence_id)

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        self._check_open()
        current = self.states.get(persistence_id)
        revision = 0 if current is None else current.revision
        if revision != expected_revision:
            raise WriterConflict(str(persistence_id), expected_revision, revision)
        self.states[persistence_id] = StateRecord(persistence_id, revision + 1, version, payload)
        return revision + 1

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        self._check_open()
        return self.states.get(persistence_id)

    async def save_reminder(self, reminder: ReminderRecord) -> None:
        self._check_open()
        self.reminders.setdefault(reminder.persistence_id, {})[reminder.name] = reminder

    async def delete_reminder(self, persistence_id: PersistenceId, name: str) -> None:
        self._check_open()
        self.reminders.get(persistence_id, {}).pop(name, None)

    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        self._check_open()
        return sorted(self.reminders.get(persistence_id, {}).values(), key=lambda r: r.name)

    async def persistence_ids(self) -> list[PersistenceId]:
        self._check_open()
        ids = {
            *(i for i, e in self.events.items() if e),
            *self.snapshots,
            *self.states,
            *(i for i, r in self.reminders.items() if r),
        }
        return sorted(ids, key=lambda i: (i.entity_type, i.entity_id))

    async def close(self) -> None:
        self.closed = True


async def copy_journal(source: Journal, target: Journal) -> int:
    """Copy every id's events, latest snapshot, state and reminders from ``source`` into
    ``target`` (which must hold none of those ids' events yet); return the number of events.

    For reproducing a production state: copy a recorded journal (a SQLite file, a JetStream
    account) into an `InMemoryJournal`, then start the actor on it under the mock clock: it
    recovers the same state, and its reminders fire as the mock clock is moved.

    Into an `InMemoryJournal`, the events are copied as stored, their numbers kept: recovery
    from the copy fails where recovery from ``source`` fails (a gap after the snapshot) and
    succeeds where it succeeds (events the snapshot covers removed, say). Another journal
    numbers what it is given from 1: an id whose events are not numbered 1, 2, 3, ... raises
    `JournalCorrupted` rather than be renumbered (what was copied before it stays)."""
    copied = 0
    for persistence_id in await source.persistence_ids():
        if isinstance(target, InMemoryJournal):
            if target.events.get(persistence_id):
                raise WriterConflict(str(persistence_id), 0, await target.last_sequence(persistence_id))
            kept = [record async for record in source.read(persistence_id)]
            if kept:
                target.events[persistence_id] = kept
            copied += len(kept)
        else:
            copied += await _renumbered(source, target, persistence_id)
        snapshot = await source.load_snapshot(persistence_id)
        if snapshot is not None:
            await target.save_snapshot(snapshot)
        state = await source.load_state(persistence_id)
        if state is not None:
            # Revisions are the target's own: the state is written once, at revision 1.
            await target.save_state(persistence_id, 0, state.version, state.payload)
        for reminder in await source.load_reminders(persistence_id):
            await target.save_reminder(reminder)
    return copied


async def _renumbered(source: Journal, target: Journal, persistence_id: PersistenceId) -> int:
    """Append ``persistence_id``'s events to ``target``, numbered from 1 as they are stored
    (`JournalCorrupted` if they are not); return how many."""
    batch: list[EventData] = []
    last = read = 0
    async for record in source.read(persistence_id):
        if record.sequence != read + 1:
            raise out_of_order(persistence_id, record.sequence, read)
        read = record.sequence
        batch.append(EventData(record.name, record.version, record.payload))
        if len(batch) == 1000:
            last = await target.append(persistence_id, last, batch)
            batch = []
    if batch:
        last = await target.append(persistence_id, last, batch)
    return last


def _sequence(record: EventRecord) -> int:
    return record.sequence
