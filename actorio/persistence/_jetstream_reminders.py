"""How a `JetStreamJournal` keeps reminders: one key per reminder, ``<entity id>.<name>`` in the
bucket ``<prefix>_reminders_<type>``, holding ``<due>\\n<message>``.

One key per reminder, not one key per id holding them all: saving or deleting one reminder then
reads and writes that reminder alone. (With all of an id's reminders in one value, each deletion
rewrote the whole set, so firing ``n`` reminders cost ``n`` squared, and one forged value of many
tiny reminders cost fifty times its size to parse.) A deletion purges the key's subject, so no
delete marker stays behind for a listing to read: an actor that arms reminders under ever new
names does not make its later recoveries slower.
"""

from __future__ import annotations

import json

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError
from ._records import PersistenceId, ReminderRecord

__all__ = ["check_no_earlier_layout", "decode_reminder", "encode_reminder", "reminder_key"]

_HEAD = 64
"""The most bytes a stored reminder's due time may take before its newline."""


def reminder_key(persistence_id: PersistenceId, name: str) -> str:
    """The key of the id's reminder ``name``: ``<entity id>.<name>`` (neither holds a dot: both
    are checked names)."""
    return f"{persistence_id.entity_id}.{name}"


def encode_reminder(reminder: ReminderRecord) -> bytes:
    """A reminder's stored value: its due time as JSON, a newline, its message."""
    return json.dumps(reminder.due).encode() + b"\n" + reminder.message


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


def check_no_earlier_layout(bucket: str, keys: list[str] | None) -> None:
    """`PersistenceError` if the reminders bucket holds keys of one token (``keys``: their
    subjects): all of an id's reminders in one key, as earlier development versions kept them.
    Read as no reminders, they would be lost without a word."""
    if keys:
        raise PersistenceError(
            f"{bucket}: {len(keys)} key(s) hold reminders in an earlier layout (all of an id's "
            f"reminders in one key, such as {shorten(repr(keys[0]))}); this version keeps one key "
            "per reminder and does not read them: fire or re-arm them with the version that wrote "
            "them, or remove the keys"
        )
