"""A JetStream journal keeps one key per reminder (``<entity id>.<name>``): saving or deleting one
reminder touches that reminder alone, a deletion leaves nothing behind for a listing to read
(and keeps a value saved since it read the key), and one load holds a bounded size."""

from __future__ import annotations

from typing import Any

import pytest

from actorio.persistence import (
    JetStreamJournal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    ReminderRecord,
)

from .journals import unique_prefix
from .test_jetstream_journal import objects

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a")


async def _subjects(journal: JetStreamJournal, pattern: str) -> set[str]:
    """The subjects of the reminders bucket's stream that ``pattern`` takes and that hold a message."""
    stream = f"KV_{journal.prefix}_reminders_account"
    js: Any = journal.client.jetstream()
    info = await js.stream_info(stream, subjects_filter=f"$KV.{journal.prefix}_reminders_account.{pattern}")
    return set(info.state.subjects or {})


async def test_a_reminder_saved_or_deleted_rewrites_no_other(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        for name in ("a", "b", "c"):
            await journal.save_reminder(ReminderRecord(ACCOUNT, name, 1.0, b"{}"))
        bucket = await journal.client.jetstream().key_value(f"{journal.prefix}_reminders_account")
        before = {name: (await bucket.get(f"a.{name}")).revision for name in ("a", "c")}
        await journal.delete_reminder(ACCOUNT, "b")
        await journal.save_reminder(ReminderRecord(ACCOUNT, "d", 2.0, b'{"n": 1}'))
        assert {name: (await bucket.get(f"a.{name}")).revision for name in ("a", "c")} == before
        assert [(r.name, r.due, r.message) for r in await journal.load_reminders(ACCOUNT)] == [
            ("a", 1.0, b"{}"),
            ("c", 1.0, b"{}"),
            ("d", 2.0, b'{"n": 1}'),
        ]
        prefix = f"$KV.{journal.prefix}_reminders_account.a."
        assert await _subjects(journal, "a.*") == {prefix + name for name in ("a", "c", "d")}


async def test_deleted_reminders_leave_no_marker_and_their_id_is_listed_no_more(nats_url: str) -> None:
    """An actor arming reminders under ever new names would otherwise make every later
    recovery read one more delete marker per name."""
    other = PersistenceId("account", "b")
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        for n in range(20):
            await journal.save_reminder(ReminderRecord(ACCOUNT, f"retry-{n}", float(n), b"{}"))
        await journal.save_reminder(ReminderRecord(other, "once", 1.0, b"{}"))
        assert await journal.persistence_ids() == [ACCOUNT, other]
        for n in range(20):
            await journal.delete_reminder(ACCOUNT, f"retry-{n}")
        await journal.delete_reminder(ACCOUNT, "never-saved")  # none is fine
        assert await _subjects(journal, "a.*") == set()
        assert await journal.load_reminders(ACCOUNT) == []
        assert await journal.persistence_ids() == [other]


async def test_a_reminder_in_the_object_store_is_read_and_its_object_goes_with_it(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix(), max_inline=100) as journal:
        large = b'{"note": "' + b"x" * 1000 + b'"}'
        await journal.save_reminder(ReminderRecord(ACCOUNT, "large", 3.0, large))
        await journal.save_reminder(ReminderRecord(ACCOUNT, "small", 4.0, b"{}"))
        assert [name.split(".")[:3] for name in await objects(journal, "account")] == [
            ["reminders", "a", "large"]
        ]
    async with await JetStreamJournal.connect(nats_url, prefix=journal.prefix, max_inline=100) as reader:
        assert [(r.name, r.message) for r in await reader.load_reminders(ACCOUNT)] == [
            ("large", large),
            ("small", b"{}"),
        ]
        await reader.delete_reminder(ACCOUNT, "large")  # another journal instance: read, then removed
        assert await objects(reader, "account") == []


async def test_keys_of_the_earlier_layout_are_not_read_and_foreign_keys_are_corrupt(nats_url: str) -> None:
    """Keys of one token (all of an id's reminders in one key, as earlier development versions kept
    them) are not read; a key of the bucket that is not ``<entity id>.<name>`` is reported by
    `persistence_ids`, naming it."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b"{}"))
        bucket = await journal.client.jetstream().key_value(f"{journal.prefix}_reminders_account")
        await bucket.put("b", b'{"wake": [5.0, "{}"]}')
        assert await journal.load_reminders(PersistenceId("account", "b")) == []
        assert await journal.persistence_ids() == [ACCOUNT]
        await bucket.put("c.x.y", b"1.0\n{}")
        foreign = r"the stored subject '\$KV\..*_reminders_account\.c\.x\.y'"
        with pytest.raises(JournalCorrupted, match=foreign):
            await journal.persistence_ids()


async def test_a_reminder_saved_while_its_deletion_reads_it_is_kept(nats_url: str) -> None:
    """A deletion purges the key up to the value it read: one saved since (here by another
    journal, large enough for the object store) stays, and so does its object."""
    prefix = unique_prefix()
    async with (
        await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as journal,
        await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as other,
    ):
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b"{}"))
        later = b'{"note": "' + b"x" * 500 + b'"}'
        kv: Any = await journal._records.bucket("reminders", "account")  # pyright: ignore[reportPrivateUsage]
        read = kv.get

        async def read_then_saved_by_the_other(key: str) -> Any:
            entry = await read(key)
            await other.save_reminder(ReminderRecord(ACCOUNT, "r", 2.0, later))
            return entry

        kv.get = read_then_saved_by_the_other
        await journal.delete_reminder(ACCOUNT, "r")
        kv.get = read
        assert [(r.due, r.message) for r in await journal.load_reminders(ACCOUNT)] == [(2.0, later)]
        assert len(await objects(journal, "account")) == 1


async def test_a_due_time_of_any_finite_size_is_read_back(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "far", 10**100, b"{}"))
        (reminder,) = await journal.load_reminders(ACCOUNT)
        assert reminder.due == float(10**100)


async def test_the_reminders_one_load_holds_are_bounded_by_max_object(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix(), max_object=1000) as journal:
        for name in ("a", "b", "c"):
            await journal.save_reminder(ReminderRecord(ACCOUNT, name, 1.0, b'"' + b"m" * 400 + b'"'))
        too_many = r"account/a: its reminders hold more than max_object \(1000\)"
        with pytest.raises(PersistenceError, match=too_many):
            await journal.load_reminders(ACCOUNT)
