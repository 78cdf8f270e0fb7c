"""actorio.persistence: actors whose state outlives their process.

- `EventSourcedActor`: the state is the fold of persisted events (`Event` models, upgraded
  across versions by `upcaster`), recovered from the latest snapshot and the events after it.
- `DurableStateActor`: the whole state is saved, with a revision for optimistic concurrency.
- Durable reminders (`PersistentActor.remind`): stored with the journal, fired after a restart.
- Journals behind one interface (`Journal`): `SqliteJournal` (a file, no server: the default),
  `JetStreamJournal` (NATS JetStream, across machines; needs nats-py) and `InMemoryJournal`
  (for tests; `copy_journal` loads a recorded journal into it).
- Errors: `PersistenceError`, `WriterConflict`, `SchemaMismatch`, `JournalCorrupted`.

See docs/persistence.md.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._durable_state import DurableStateActor as DurableStateActor
    from ._errors import JournalCorrupted as JournalCorrupted
    from ._errors import PersistenceError as PersistenceError
    from ._errors import SchemaMismatch as SchemaMismatch
    from ._errors import WriterConflict as WriterConflict
    from ._event_sourced import EventSourcedActor as EventSourcedActor
    from ._events import Event as Event
    from ._events import EventCodec as EventCodec
    from ._events import upcaster as upcaster
    from ._jetstream import JetStreamJournal as JetStreamJournal
    from ._journal import Journal as Journal
    from ._memory import InMemoryJournal as InMemoryJournal
    from ._memory import copy_journal as copy_journal
    from ._persistent import PersistentActor as PersistentActor
    from ._records import EventData as EventData
    from ._records import EventRecord as EventRecord
    from ._records import PersistenceId as PersistenceId
    from ._records import ReminderRecord as ReminderRecord
    from ._records import SnapshotRecord as SnapshotRecord
    from ._records import StateRecord as StateRecord
    from ._sqlite import SqliteJournal as SqliteJournal

__all__ = [
    "DurableStateActor",
    "Event",
    "EventCodec",
    "EventData",
    "EventRecord",
    "EventSourcedActor",
    "InMemoryJournal",
    "JetStreamJournal",
    "Journal",
    "JournalCorrupted",
    "PersistenceError",
    "PersistenceId",
    "PersistentActor",
    "ReminderRecord",
    "SchemaMismatch",
    "SnapshotRecord",
    "SqliteJournal",
    "StateRecord",
    "WriterConflict",
    "copy_journal",
    "upcaster",
]

_EXPORTS = {
    "DurableStateActor": "._durable_state",
    "JournalCorrupted": "._errors",
    "PersistenceError": "._errors",
    "SchemaMismatch": "._errors",
    "WriterConflict": "._errors",
    "EventSourcedActor": "._event_sourced",
    "Event": "._events",
    "EventCodec": "._events",
    "upcaster": "._events",
    "JetStreamJournal": "._jetstream",
    "Journal": "._journal",
    "InMemoryJournal": "._memory",
    "copy_journal": "._memory",
    "PersistentActor": "._persistent",
    "EventData": "._records",
    "EventRecord": "._records",
    "PersistenceId": "._records",
    "ReminderRecord": "._records",
    "SnapshotRecord": "._records",
    "StateRecord": "._records",
    "SqliteJournal": "._sqlite",
}

if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any name
    from actorio._lazy import lazy_attributes

    __getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)
