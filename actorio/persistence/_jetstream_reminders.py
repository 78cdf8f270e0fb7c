"""How a `JetStreamJournal` keeps reminders: one key per reminder, ``<entity id>.<name>`` in the
bucket ``<prefix>_reminders_<type>``, holding ``<due>\\n<message>``.

One key per reminder, not one key per id holding them all: saving or deleting one reminder then
reads and writes that reminder alone. (With all of an id's reminders in one value, each deletion
rewrote the whole set, so firing ``n`` reminders cost ``n`` squared, and one forged value of many
tiny reminders cost fifty times its size to parse.) A deletion purges the key's subject up to
the value it read (one saved since stays), so no delete marker stays behind for a listing to
read: an actor that arms reminders under ever new names does not make its later recoveries
slower. Keys of one token (all of an id's reminders in one key, as earlier development versions
kept them) are not read.
"""

from __future__ import annotations

import contextlib
import json

import nats.js.errors

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError
from ._jetstream_ids import stream_subjects
from ._jetstream_objects import pointed_object
from ._jetstream_records import KeyRecords
from ._jetstream_wire import check_bucket_not_gone
from ._records import PersistenceId, ReminderRecord

__all__ = [
    "decode_reminder",
    "delete_reminder",
    "encode_reminder",
    "holds_reminders",
    "load_reminders",
    "reminder_key",
    "save_reminder",
    "subject_id",
]

_HEAD = 64
"""The most bytes a stored reminder's due time may take before its newline."""


def reminder_key(persistence_id: PersistenceId, name: str) -> str:
    """The key of the id's reminder ``name``: ``<entity id>.<name>`` (neither holds a dot: both
    are checked names)."""
    return f"{persistence_id.entity_id}.{name}"


def encode_reminder(reminder: ReminderRecord) -> bytes:
    """A reminder's stored value: its due time as a float's JSON (at most 24 bytes, whatever
    the number: an ``int`` of a hundred digits is finite as a float too), a newline, its
    message."""
    return repr(float(reminder.due)).encode() + b"\n" + reminder.message


def decode_reminder(persistence_id: PersistenceId, name: str, value: bytes) -> ReminderRecord:
    """The reminder a key holds; a bad name, a value not of the form `encode_reminder` writes, a
    due time that is not a finite number or a message that is not UTF-8 text is
    `JournalCorrupted` naming the reminder (the text bounded)."""
    try:
        head, newline, message = value.partition(b"\n")
        if not newline or len(head) > _HEAD:
            raise ValueError("no due time and newline before the message")
        due = json.loads(head)
        if not isinstance(due, (int, float)) or isinstance(due, bool):
            raise ValueError(f"a due time of type {type(due).__name__}, not a number")
        return ReminderRecord(persistence_id, name, due, message)
    except (ValueError, RecursionError) as error:  # (json's errors are ValueErrors)
        raise JournalCorrupted(
            f"{persistence_id}: stored reminders are not a record "
            f"(reminder {shorten(repr(name))}: {shorten(str(error))})"
        ) from None


def subject_id(bucket: str, entity_type: str, subject_prefix: str, subject: str) -> PersistenceId | None:
    """The persistence id whose reminder a subject of the reminders bucket holds (``subject`` is
    ``subject_prefix`` then ``<entity id>.<name>``); ``None`` for a key of one token (all of an id's
    reminders in one key, as earlier development versions kept them: not read). Any other
    subject is `JournalCorrupted` naming the bucket and the subject (bounded)."""
    key = subject[len(subject_prefix) :] if subject.startswith(subject_prefix) else None
    if key is not None and "." not in key:
        return None
    try:
        if key is None:
            raise ValueError(f"not a subject under {subject_prefix}*")
        entity_id, _, name = key.partition(".")
        persistence_id = PersistenceId(entity_type, entity_id)
        ReminderRecord(persistence_id, name, 0.0, b"")  # the name's rules
        return persistence_id
    except ValueError as error:
        raise JournalCorrupted(
            f"{bucket}: the stored subject {shorten(repr(subject))} is not a reminder's "
            f"({shorten(str(error))})"
        ) from None


async def save_reminder(records: KeyRecords, reminder: ReminderRecord) -> None:
    """Keep ``reminder`` in its key (replacing the one of that name)."""
    key = reminder_key(reminder.persistence_id, reminder.name)
    await records.put("reminders", reminder.persistence_id, encode_reminder(reminder), None, key)


async def delete_reminder(records: KeyRecords, persistence_id: PersistenceId, name: str) -> None:
    """Remove the id's reminder ``name`` (none is fine): purge its key's subject up to the value
    read (one saved since is kept, and so is its object), then remove that value's object."""
    key = reminder_key(persistence_id, name)
    bucket = records.name("reminders", persistence_id.entity_type)
    kv = await records.bucket("reminders", persistence_id.entity_type)
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError as error:
        check_bucket_not_gone(persistence_id, bucket, error)
        return
    pointed = pointed_object("reminders", persistence_id, key, entry.value or b"")
    subject = f"$KV.{bucket}.{key}"
    await records.js.purge_stream(f"KV_{bucket}", subject=subject, seq=(entry.revision or 0) + 1)
    if pointed is not None:  # (forgotten once removed: if cancelled, a later save removes it)
        await records.remove_object(persistence_id, pointed)
        if records.objects.get(("reminders", persistence_id, key)) == pointed:
            del records.objects[("reminders", persistence_id, key)]


async def _names(records: KeyRecords, persistence_id: PersistenceId) -> list[str]:
    """The names of the id's reminders, sorted, as the listing of its keys gives them."""
    journal = records.journal
    await records.bucket("reminders", persistence_id.entity_type)  # (made, or checked)
    bucket = records.name("reminders", persistence_id.entity_type)
    keys = f"$KV.{bucket}.{persistence_id.entity_id}."
    subjects = await stream_subjects(journal.client, f"KV_{bucket}", keys + "*", journal.timeout)
    if subjects is None:
        raise PersistenceError(f"{persistence_id}: the bucket {bucket} is gone (deleted by someone)")
    return sorted(subject[len(keys) :] for subject in subjects)


async def load_reminders(records: KeyRecords, persistence_id: PersistenceId) -> list[ReminderRecord]:
    """The id's reminders, by name: one listing of its keys, then a read of each. Together they
    may hold at most the journal's ``max_object`` bytes (`PersistenceError` beyond: memory stays
    bounded, whatever is stored); saves are not held to that total."""
    found: list[ReminderRecord] = []
    size, limit = 0, records.journal.max_object
    for name in await _names(records, persistence_id):
        stored = await records.get("reminders", persistence_id, reminder_key(persistence_id, name))
        if stored is None:  # (removed since the listing, or a delete marker)
            continue
        if (size := size + len(stored[0])) > limit:
            raise PersistenceError(
                f"{persistence_id}: its reminders hold more than max_object ({limit}) bytes; a "
                "journal with a larger max_object reads them"
            )
        found.append(decode_reminder(persistence_id, name, stored[0]))
    return found


async def holds_reminders(records: KeyRecords, persistence_id: PersistenceId) -> bool:
    """Whether one of the id's reminder keys holds a value (not a delete marker; its object,
    if any, is not read)."""
    kv = await records.bucket("reminders", persistence_id.entity_type)
    for name in await _names(records, persistence_id):
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            return bool(await kv.get(reminder_key(persistence_id, name)))
    return False
