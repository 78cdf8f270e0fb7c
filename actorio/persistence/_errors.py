"""The exceptions of actorio.persistence.

::

    ActorioException
     └── PersistenceError            a journal could not do what it was asked
          ├── WriterConflict         another writer wrote this persistence id first: nothing written
          ├── SchemaMismatch         a stored event, state or reminder does not fit its model
          └── JournalCorrupted       stored events not 1, 2, 3, ..., or records not of the journal's form
"""

from __future__ import annotations

from actorio import ActorioException

__all__ = ["JournalCorrupted", "PersistenceError", "SchemaMismatch", "WriterConflict", "out_of_order"]


class PersistenceError(ActorioException):
    """A journal could not do what it was asked."""


class WriterConflict(PersistenceError):
    """Another writer appended to (or saved) this persistence id since this one read it: the
    events (or the state) given were not written, none of them. Raised by `Journal.append` and
    `Journal.save_state`, and so by `EventSourcedActor.persist` and `DurableStateActor.save`.

    It is what a second incarnation of one entity (two processes, a split brain) gets: the
    first writer wins, the other writes nothing. An actor that got it holds a stale state and
    keeps getting it: restart it (it recovers what the other wrote) or stop it."""

    def __init__(self, persistence_id: str, expected: int, found: int) -> None:
        super().__init__(
            f"{persistence_id}: another writer got there first (expected to write after "
            f"{expected}, the journal holds {found}); nothing was written"
        )
        self.persistence_id = persistence_id
        self.expected = expected
        self.found = found


class SchemaMismatch(PersistenceError):
    """A stored event, snapshot, state or reminder's message does not fit the model that reads
    it: an unknown wire name, a version with no upcaster to the current one, a field the model
    no longer declares (a removed field needs an upcaster that drops it), or a value the model
    refuses."""


class JournalCorrupted(PersistenceError):
    """The events stored for one persistence id are not numbered 1, 2, 3, ... without a gap (or a
    snapshot is beyond the last of them), or a stored record is not of the form its journal
    writes (a file edited by hand, a stream written by something else)."""


def out_of_order(persistence_id: object, sequence: int, follows: int) -> JournalCorrupted:
    """The error for a stored event of ``persistence_id`` numbered ``sequence`` where event
    ``follows`` + 1 was due (the one rule of the events' numbers: 1, 2, 3, ... per id)."""
    if sequence < 1:
        return JournalCorrupted(
            f"{persistence_id}: an event is numbered {sequence}: events are numbered from 1"
        )
    return JournalCorrupted(f"{persistence_id}: event {sequence} follows event {follows}")
