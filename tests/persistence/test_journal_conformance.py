"""The contract of `Journal` (its docstring), checked on every journal: in memory, SQLite and
JetStream (against a real nats-server)."""

from __future__ import annotations

import asyncio

import pytest

from actorio.persistence import (
    EventData,
    Journal,
    PersistenceId,
    ReminderRecord,
    SnapshotRecord,
    WriterConflict,
)

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a-1")
OTHER = PersistenceId("account", "a-2")
CART = PersistenceId("cart", "a-1")


def events(*names: str) -> list[EventData]:
    return [EventData(name, 1, b'{"n":"%s"}' % name.encode()) for name in names]


async def read_all(journal: Journal, persistence_id: PersistenceId, after: int = 0) -> list[tuple[int, str]]:
    return [(r.sequence, r.name) async for r in journal.read(persistence_id, after)]


async def test_appends_are_numbered_from_one_and_read_back_in_order(journal: Journal) -> None:
    assert await journal.last_sequence(ACCOUNT) == 0
    assert await read_all(journal, ACCOUNT) == []
    assert await journal.append(ACCOUNT, 0, events("a")) == 1
    assert await journal.append(ACCOUNT, 1, events("b", "c", "d")) == 4
    assert await journal.last_sequence(ACCOUNT) == 4
    assert await read_all(journal, ACCOUNT) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert await read_all(journal, ACCOUNT, after=2) == [(3, "c"), (4, "d")]
    assert await read_all(journal, ACCOUNT, after=4) == []
    records = [r async for r in journal.read(ACCOUNT)]
    assert records[0].payload == b'{"n":"a"}'
    assert records[0].version == 1
    assert records[0].persistence_id == ACCOUNT


async def test_ids_are_kept_apart_by_entity_type_and_id(journal: Journal) -> None:
    await journal.append(ACCOUNT, 0, events("a"))
    await journal.append(OTHER, 0, events("b", "c"))
    await journal.append(CART, 0, events("d"))
    assert await read_all(journal, ACCOUNT) == [(1, "a")]
    assert await read_all(journal, OTHER) == [(1, "b"), (2, "c")]
    assert await read_all(journal, CART) == [(1, "d")]
    assert await journal.persistence_ids() == [ACCOUNT, OTHER, CART]


async def test_an_id_with_an_equals_sign_is_stored_as_any_other(journal: Journal) -> None:
    """An entity's key may hold ``=`` (base64, ``k=v``); a persistent entity's id is its key."""
    keyed, plain = PersistenceId("account", "k=1"), PersistenceId("account", "k")
    await journal.append(keyed, 0, events("a"))
    await journal.append(plain, 0, events("b"))
    assert await read_all(journal, keyed) == [(1, "a")]
    assert await read_all(journal, plain) == [(1, "b")]
    await journal.save_snapshot(SnapshotRecord(keyed, 1, 1, b'{"x":1}'))
    assert await journal.load_snapshot(keyed) == SnapshotRecord(keyed, 1, 1, b'{"x":1}')
    assert await journal.load_snapshot(plain) is None
    assert await journal.save_state(keyed, 0, 1, b'{"v":1}') > 0
    assert await journal.load_state(plain) is None
    assert keyed in await journal.persistence_ids()
    with pytest.raises(ValueError, match="invalid entity type"):
        PersistenceId("a=b", "k")


async def test_an_append_after_a_stale_sequence_is_a_conflict_and_writes_nothing(journal: Journal) -> None:
    await journal.append(ACCOUNT, 0, events("a", "b"))
    for stale in (0, 1, 3):
        with pytest.raises(WriterConflict, match=r"account/a-1: another writer got there first") as caught:
            await journal.append(ACCOUNT, stale, events("x", "y"))
        assert (caught.value.expected, caught.value.found) == (stale, 2)
    assert await read_all(journal, ACCOUNT) == [(1, "a"), (2, "b")]
    assert await journal.append(ACCOUNT, 2, events("c")) == 3


async def test_two_writers_racing_on_one_id_one_wins_the_other_writes_nothing(journal: Journal) -> None:
    await journal.append(ACCOUNT, 0, events("a"))
    results = await asyncio.gather(
        journal.append(ACCOUNT, 1, events("first", "first")),
        journal.append(ACCOUNT, 1, events("second")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["WriterConflict", "int"]
    stored = await read_all(journal, ACCOUNT)
    assert stored in ([(1, "a"), (2, "first"), (3, "first")], [(1, "a"), (2, "second")])


async def test_concurrent_appends_to_many_ids_all_land(journal: Journal) -> None:
    ids = [PersistenceId("account", f"n{i}") for i in range(50)]
    assert await asyncio.gather(*(journal.append(i, 0, events("a", "b")) for i in ids)) == [2] * 50
    assert await asyncio.gather(*(journal.append(i, 2, events("c")) for i in ids)) == [3] * 50
    for i in ids[:3]:
        assert await read_all(journal, i) == [(1, "a"), (2, "b"), (3, "c")]


async def test_reading_many_events_crosses_pages(journal: Journal) -> None:
    last = 0
    for start in range(0, 2500, 250):
        last = await journal.append(ACCOUNT, last, events(*(f"e{n}" for n in range(start, start + 250))))
    stored = await read_all(journal, ACCOUNT, after=7)
    assert [s for s, _ in stored] == list(range(8, 2501))
    assert stored[-1] == (2500, "e2499")


async def test_the_latest_snapshot_is_kept(journal: Journal) -> None:
    assert await journal.load_snapshot(ACCOUNT) is None
    await journal.append(ACCOUNT, 0, events("a", "b", "c"))
    await journal.save_snapshot(SnapshotRecord(ACCOUNT, 2, 1, b'{"x":2}'))
    await journal.save_snapshot(SnapshotRecord(ACCOUNT, 3, 2, b'{"x":3}'))
    assert await journal.load_snapshot(ACCOUNT) == SnapshotRecord(ACCOUNT, 3, 2, b'{"x":3}')
    assert await journal.load_snapshot(OTHER) is None


async def test_a_read_after_a_loaded_snapshot_gives_the_events_after_it(journal: Journal) -> None:
    """What recovery does: a snapshot saved right after the append of its last event, more
    events, then the snapshot loaded and the events after it read (a journal may start reading
    where the snapshot's event is stored)."""
    for sequence, name in enumerate("abc"):
        await journal.append(ACCOUNT, sequence, events(name))
    await journal.save_snapshot(SnapshotRecord(ACCOUNT, 3, 1, b'{"x":3}'))
    await journal.append(ACCOUNT, 3, events("d"))
    await journal.append(ACCOUNT, 4, events("e", "f"))
    assert await journal.load_snapshot(ACCOUNT) == SnapshotRecord(ACCOUNT, 3, 1, b'{"x":3}')
    assert await read_all(journal, ACCOUNT, 3) == [(4, "d"), (5, "e"), (6, "f")]
    assert await read_all(journal, ACCOUNT, 5) == [(6, "f")]
    assert await read_all(journal, ACCOUNT, 1) == [(2, "b"), (3, "c"), (4, "d"), (5, "e"), (6, "f")]


async def test_states_are_saved_with_an_optimistic_revision(journal: Journal) -> None:
    assert await journal.load_state(ACCOUNT) is None
    first = await journal.save_state(ACCOUNT, 0, 1, b'{"v":1}')
    assert first > 0
    second = await journal.save_state(ACCOUNT, first, 1, b'{"v":2}')
    assert second > first
    with pytest.raises(WriterConflict):
        await journal.save_state(ACCOUNT, first, 1, b'{"v":"stale"}')
    with pytest.raises(WriterConflict):
        await journal.save_state(ACCOUNT, 0, 1, b'{"v":"new"}')
    stored = await journal.load_state(ACCOUNT)
    assert stored is not None
    assert (stored.revision, stored.version, stored.payload) == (second, 1, b'{"v":2}')
    assert await journal.load_state(OTHER) is None


async def test_reminders_are_kept_by_name_replaced_and_deleted(journal: Journal) -> None:
    assert await journal.load_reminders(ACCOUNT) == []
    await journal.save_reminder(ReminderRecord(ACCOUNT, "b", 20.5, b'{"type":"T","data":{}}'))
    await journal.save_reminder(ReminderRecord(ACCOUNT, "a", 10.25, b"{}"))
    await journal.save_reminder(ReminderRecord(ACCOUNT, "a", 11.0, b"{}"))
    await journal.save_reminder(ReminderRecord(OTHER, "a", 1.0, b"{}"))
    assert await journal.load_reminders(ACCOUNT) == [
        ReminderRecord(ACCOUNT, "a", 11.0, b"{}"),
        ReminderRecord(ACCOUNT, "b", 20.5, b'{"type":"T","data":{}}'),
    ]
    await journal.delete_reminder(ACCOUNT, "a")
    await journal.delete_reminder(ACCOUNT, "never-saved")
    assert [r.name for r in await journal.load_reminders(ACCOUNT)] == ["b"]
    assert [r.name for r in await journal.load_reminders(OTHER)] == ["a"]


async def test_a_closed_journal_refuses_work(journal: Journal) -> None:
    await journal.close()
    with pytest.raises(RuntimeError, match="closed"):
        await journal.append(ACCOUNT, 0, events("a"))
    await journal.close()  # twice is fine
