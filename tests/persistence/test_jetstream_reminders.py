"""A JetStream journal keeps one key per reminder (``<entity id>.<name>``): saving or deleting one
reminder touches that reminder alone, a deletion leaves nothing behind for a listing to read, and
a bucket written in the earlier layout (all of an id's reminders in one key) is reported, not
read as no reminders."""

from __future__ import annotations

from typing import Any

import pytest

from actorio.persistence import JetStreamJournal, PersistenceError, PersistenceId, ReminderRecord

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


async def test_a_bucket_in_the_earlier_layout_is_reported_not_read_as_empty(nats_url: str) -> None:
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b"{}"))  # (makes the bucket)
        bucket = await journal.client.jetstream().key_value(f"{prefix}_reminders_account")
        await bucket.put("b", b'{"wake": [5.0, "{}"]}')  # all of id b's reminders in one key
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        with pytest.raises(PersistenceError, match=r"1 key\(s\) hold reminders in an earlier layout"):
            await journal.load_reminders(PersistenceId("account", "b"))
