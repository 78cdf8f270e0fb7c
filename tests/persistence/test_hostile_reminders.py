"""Reminders as hostile storage holds them: a due time that is not a finite number is refused
where a reminder is made (so no journal stores one) and reported as a corrupt record, naming the
reminder, where a journal reads one back; a stored message that no longer validates fails the
recovery with an error naming the persistence id and the reminder, its text bounded."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import (
    DurableStateActor,
    JetStreamJournal,
    Journal,
    JournalCorrupted,
    PersistenceId,
    ReminderRecord,
    SchemaMismatch,
    SqliteJournal,
    copy_journal,
)
from tests.support import bounded

from .journals import unique_prefix

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a")
NOT_FINITE = [math.inf, -math.inf, math.nan]


class Wake(Message):
    text: str


class Arm(Message):
    name: str
    delay: int | float


class Woken(BaseModel):
    texts: list[str] = []


class Alarm(DurableStateActor[Wake | Arm, Woken]):
    @handles(Wake)
    async def wake(self, msg: Wake) -> None:
        await self.save(Woken(texts=[*self.state.texts, msg.text]))

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        await self.remind(msg.name, Wake(text=msg.name), msg.delay)


ALARM = PersistenceId("Alarm", "al")


def short_id(value: object) -> str:
    """A test id: the value's repr, an int of hundreds of digits cut short."""
    text = repr(value)
    return text if len(text) <= 20 else f"{text[:6]}...({len(text)} chars)"


@pytest.mark.parametrize("due", [*NOT_FINITE, 10**400, -(10**400), "1.0", True, None], ids=short_id)
async def test_a_reminder_due_at_no_finite_time_is_refused_where_it_is_made(due: object) -> None:
    with pytest.raises(ValueError, match=r"reminder 'r' of account/a: due .* is not a finite number"):
        ReminderRecord(ACCOUNT, "r", due, b"{}")  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [*NOT_FINITE, 10**400], ids=short_id)
async def test_a_remind_with_no_finite_due_time_raises_and_stores_nothing(
    journal: Journal, delay: float
) -> None:
    """An int delay beyond a float's range raised OverflowError, not the ValueError promised."""
    async with Alarm("al", journal) as ref:
        with pytest.raises(ValueError, match=r"reminder 'never' of Alarm/al: due .* is not a finite"):
            await bounded(ref.ask(Arm(name="never", delay=delay)))
    assert await journal.load_reminders(ALARM) == []


async def test_a_sqlite_reminder_stored_due_at_infinity_is_corrupt_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "fine", 1.0, b"{}"))
    with sqlite3.connect(path) as edit:
        edit.execute("INSERT INTO reminders VALUES ('account', 'a', 'late', 9e999, x'7b7d')")
    edit.close()
    async with SqliteJournal(path) as journal:
        corrupt = r"account/a: a stored reminder: reminder 'late' .* due inf"
        with pytest.raises(JournalCorrupted, match=corrupt):
            await journal.load_reminders(ACCOUNT)
    with sqlite3.connect(path) as edit:
        edit.execute("UPDATE reminders SET due = 'nan' WHERE name = 'late'")
    edit.close()
    async with SqliteJournal(path) as journal:
        with pytest.raises(JournalCorrupted, match="account/a: a stored reminder 'late' row holds"):
            await journal.load_reminders(ACCOUNT)


@pytest.mark.parametrize(
    "stored",
    [
        b"Infinity\n{}",
        b"NaN\n{}",
        b"1e999\n{}",
        b"1" + b"0" * 400 + b"\n{}",
        b'"1.0"\n{}',
        b'{"a": 1}\n{}',
        b"1.0",
        b"true\n{}",
        b"1.0\n\xff",
    ],
    ids=["infinity", "nan", "overflow", "int-overflow", "text", "object", "single", "bool", "not-utf8"],
)
async def test_a_jetstream_reminder_stored_not_of_its_form_is_corrupt_naming_it(
    nats_url: str, stored: bytes
) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "fine", 1.0, b"{}"))
        bucket = await journal.client.jetstream().key_value(f"{journal.prefix}_reminders_account")
        await bucket.put("a.late", stored)  # one key per reminder: <entity id>.<name>
        corrupt = r"account/a: stored reminders are not a record \(reminder 'late'"
        with pytest.raises(JournalCorrupted, match=corrupt):
            await journal.load_reminders(ACCOUNT)


@pytest.mark.parametrize(
    "message",
    [
        b'{"type": "Wake", "data": {}}',
        b'{"type": "Gone", "data": {}}',
        b'{"type": "' + b"G" * 100_000 + b'"}',
    ],
    ids=["invalid", "unknown", "long"],
)
async def test_a_stored_reminder_message_that_no_longer_validates_names_the_reminder(
    journal: Journal, message: bytes
) -> None:
    """The recovery fails with `SchemaMismatch` naming the id and the reminder, its text
    bounded, whatever the journal."""
    await journal.save_reminder(ReminderRecord(ALARM, "stale", 1.0, message))
    alarm = Alarm("al", journal)
    await alarm.start()
    with pytest.raises(SchemaMismatch, match="Alarm/al: the stored reminder 'stale': ") as caught:
        await bounded(alarm.wait_recovered())
    assert len(str(caught.value)) < 1000
    with pytest.raises(SchemaMismatch):
        await bounded(alarm.run_until_stopped())


async def test_a_reminder_message_that_is_not_utf8_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match=r"reminder 'r' of account/a: its message is not UTF-8 text"):
        ReminderRecord(ACCOUNT, "r", 1.0, b'{"a": "\xff"}')


async def test_a_sqlite_reminder_message_that_is_not_utf8_is_corrupt_naming_it(
    tmp_path: Path, nats_url: str
) -> None:
    """It was loaded, and copying the journal to JetStream then failed with a UnicodeDecodeError."""
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "bad", 1.0, b"{}"))
    with sqlite3.connect(path) as edit:
        edit.execute("UPDATE reminders SET message = x'ff'")
    edit.close()
    corrupt = r"account/a: a stored reminder: reminder 'bad' of account/a: its message is not UTF-8"
    async with SqliteJournal(path) as journal:
        with pytest.raises(JournalCorrupted, match=corrupt):
            await journal.load_reminders(ACCOUNT)
        async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as target:
            with pytest.raises(JournalCorrupted, match=corrupt):
                await copy_journal(journal, target)
