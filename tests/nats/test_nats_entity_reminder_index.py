"""How a persistent entity's activation keeps its type's index of due reminders: from the
reminders it read once, not from a read of all of them at each write (firing ``n`` reminders
read them ``n`` times, each read one round trip per reminder on JetStream), and never later than
the earliest reminder stored."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.js.errors
import pytest

from actorio.nats._entity_persistence import EntityJournal
from actorio.persistence import InMemoryJournal, PersistenceError, PersistenceId, ReminderRecord

pytestmark = pytest.mark.asyncio

ALICE = PersistenceId("account", "alice")


class CountingJournal(InMemoryJournal):
    """Counts the reads of reminders; fails the next save of a reminder when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.fail_next_save = False

    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        self.reads += 1
        found = await super().load_reminders(persistence_id)
        for _ in range(5):  # (a slow read: what it read may be stale when it returns)
            await asyncio.sleep(0)
        return found

    async def save_reminder(self, reminder: ReminderRecord) -> None:
        await asyncio.sleep(0)  # (a round trip: lets concurrent writes interleave)
        if self.fail_next_save:
            self.fail_next_save = False
            raise PersistenceError("refused")
        await super().save_reminder(reminder)


class Index:
    """The type's index as the activation tells it: the key's earliest due time, or none."""

    def __init__(self) -> None:
        self.entry: float | None = None

    async def note(self, key: str, dues: list[float]) -> None:
        self.entry = min(dues) if dues else None

    async def note_quietly(self, key: str, dues: list[float]) -> None:
        await self.note(key, dues)


def _activation(journal: CountingJournal, index: Index) -> EntityJournal:
    reminders: Any = index
    return EntityJournal(journal, lambda: True, reminders, "alice", ALICE)


async def _refused(journal: CountingJournal, activation: EntityJournal, reminder: ReminderRecord) -> None:
    """Save ``reminder`` through ``activation``, the journal failing the write."""
    journal.fail_next_save = True
    with pytest.raises(PersistenceError):
        await activation.save_reminder(reminder)


async def _stored_earliest(journal: InMemoryJournal) -> float | None:
    dues = [r.due for r in await journal.load_reminders(ALICE)]
    return min(dues) if dues else None


async def test_firing_many_reminders_reads_them_once() -> None:
    journal, index = CountingJournal(), Index()
    for n in range(50):
        await journal.save_reminder(ReminderRecord(ALICE, f"r{n}", float(100 + n), b"{}"))
    activation = _activation(journal, index)
    found = await activation.load_reminders(ALICE)  # the recovery's read
    assert index.entry == 100.0
    for reminder in found:  # each fired, then deleted
        await activation.delete_reminder(ALICE, reminder.name)
        assert index.entry == await _stored_earliest(journal)
    await activation.save_reminder(ReminderRecord(ALICE, "again", 7.0, b"{}"))
    assert index.entry == 7.0
    assert journal.reads == 1 + 50  # the recovery's, and this test's own checks


async def test_a_failed_write_makes_the_next_one_read_them_again() -> None:
    journal, index = CountingJournal(), Index()
    activation = _activation(journal, index)
    await activation.load_reminders(ALICE)
    await activation.save_reminder(ReminderRecord(ALICE, "a", 10.0, b"{}"))
    await _refused(journal, activation, ReminderRecord(ALICE, "b", 5.0, b"{}"))
    assert index.entry == 5.0  # too early at worst: a wake-up for nothing
    reads = journal.reads
    await activation.save_reminder(ReminderRecord(ALICE, "c", 20.0, b"{}"))
    assert journal.reads == reads + 1
    assert index.entry == 10.0 == await _stored_earliest(journal)


async def test_concurrent_writes_leave_the_index_at_the_earliest_stored() -> None:
    journal, index = CountingJournal(), Index()
    activation = _activation(journal, index)
    await activation.save_reminder(ReminderRecord(ALICE, "late", 50.0, b"{}"))  # before any read
    await asyncio.gather(
        *(activation.save_reminder(ReminderRecord(ALICE, f"r{n}", float(n), b"{}")) for n in range(1, 6)),
        activation.delete_reminder(ALICE, "r1"),
    )
    await asyncio.gather(*(activation.delete_reminder(ALICE, f"r{n}") for n in range(1, 5)))
    assert index.entry == 5.0 == await _stored_earliest(journal)


async def test_moving_a_reminder_later_leaves_the_entry_early_until_stored() -> None:
    """The entry is the earlier of the stored and the new due time while the write is unsure:
    a failed write that moved the earliest reminder later leaves a wake-up for nothing, never a
    late one."""
    journal, index = CountingJournal(), Index()
    activation = _activation(journal, index)
    await activation.load_reminders(ALICE)
    await activation.save_reminder(ReminderRecord(ALICE, "a", 10.0, b"{}"))
    await _refused(journal, activation, ReminderRecord(ALICE, "a", 50.0, b"{}"))
    assert index.entry == 10.0 == await _stored_earliest(journal)
    await activation.save_reminder(ReminderRecord(ALICE, "a", 50.0, b"{}"))  # stored: the entry moves
    assert index.entry == 50.0 == await _stored_earliest(journal)


async def test_another_ids_reminders_read_or_written_leave_the_activations_own_alone() -> None:
    journal, index = CountingJournal(), Index()
    bob = PersistenceId("account", "bob")
    other_type = PersistenceId("other", "alice")  # the same entity id, of another type
    await journal.save_reminder(ReminderRecord(bob, "b", 500.0, b"{}"))
    await journal.save_reminder(ReminderRecord(other_type, "z", 900.0, b"{}"))
    activation = _activation(journal, index)
    await activation.load_reminders(ALICE)
    await activation.save_reminder(ReminderRecord(ALICE, "a", 10.0, b"{}"))
    await activation.save_reminder(ReminderRecord(ALICE, "c", 20.0, b"{}"))
    assert [r.name for r in await activation.load_reminders(bob)] == ["b"]
    assert [r.name for r in await activation.load_reminders(other_type)] == ["z"]
    await activation.save_reminder(ReminderRecord(bob, "d", 1.0, b"{}"))
    assert index.entry == 10.0
    await activation.delete_reminder(ALICE, "c")
    assert index.entry == 10.0 == await _stored_earliest(journal)


async def test_a_read_beside_a_write_leaves_the_entry_at_the_earliest_stored() -> None:
    journal, index = CountingJournal(), Index()
    await journal.save_reminder(ReminderRecord(ALICE, "late", 101.0, b"{}"))
    activation = _activation(journal, index)
    await activation.load_reminders(ALICE)  # the recovery's read; then another, beside a write
    await asyncio.gather(
        activation.load_reminders(ALICE), activation.save_reminder(ReminderRecord(ALICE, "soon", 5.0, b"{}"))
    )
    await activation.delete_reminder(ALICE, "late")
    assert index.entry == 5.0 == await _stored_earliest(journal)


class StoringBucket:
    """The index bucket as the server holds it; a put can be stored and its acknowledgement lost
    (the caller cancelled)."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.lose_next_acknowledgement = False
        self.refuse_next = False

    async def put(self, key: str, value: bytes) -> int:
        if self.refuse_next:
            self.refuse_next = False
            raise nats.js.errors.APIError(description="refused")
        self.stored[key] = value
        if self.lose_next_acknowledgement:
            self.lose_next_acknowledgement = False
            raise asyncio.CancelledError
        return 1

    async def delete(self, key: str) -> None:
        self.stored.pop(key, None)


async def test_an_index_write_cancelled_after_it_was_stored_is_made_again() -> None:
    """The node's view of the entry (``due``) said 50 while the bucket held 100, after a write of
    100 whose acknowledgement was lost: a later write of 50 was skipped, and the key was woken
    only at 100."""
    from actorio.nats._entity_persistence import Reminders

    entities: Any = None
    index = Reminders(entities, "account", entities, "index")
    bucket = index._kv = StoringBucket()  # type: ignore[assignment]  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
    await index.note("alice", [50.0, 100.0])
    bucket.lose_next_acknowledgement = True
    with pytest.raises(asyncio.CancelledError):
        await index.note("alice", [100.0])  # (the reminder due at 50 deleted)
    assert bucket.stored["alice"] == b"100.0"
    await index.note("alice", [50.0, 100.0])  # (armed again)
    assert bucket.stored["alice"] == b"50.0"


async def test_a_refused_index_write_is_not_unsure() -> None:
    """A write the server refused stored nothing: the next one is skipped as before if the
    entry it would write is the one the node last saw, and the key is not kept as unsure."""
    from actorio.nats._entity_persistence import Reminders

    entities: Any = None
    index = Reminders(entities, "account", entities, "index")
    bucket = index._kv = StoringBucket()  # type: ignore[assignment]  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
    await index.note("alice", [50.0])
    bucket.refuse_next = True
    with pytest.raises(nats.js.errors.APIError):
        await index.note("alice", [10.0])
    assert not index._unsure  # pyright: ignore[reportPrivateUsage]
    await index.note("alice", [])  # (the reminder due at 50 deleted)
    assert "alice" not in bucket.stored
    assert not index._unsure  # pyright: ignore[reportPrivateUsage]
