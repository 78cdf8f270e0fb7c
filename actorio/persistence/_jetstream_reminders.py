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

import json

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted
from ._records import PersistenceId, ReminderRecord

__all__ = ["decode_reminder", "encode_reminder", "reminder_key", "subject_id"]

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
