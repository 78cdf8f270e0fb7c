"""`EventSourcedActor`: an actor whose state is the fold of its persisted events, recovered from
the latest snapshot and the events after it."""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Literal

from pydantic import BaseModel
from typing_extensions import TypeVar

from actorio import Message
from actorio.lowlevel import LogLimit, reserve_handler_names, shorten

from ._errors import JournalCorrupted, PersistenceError, SchemaMismatch, WriterConflict, out_of_order
from ._events import Event, EventCodec, check_stored, decode_model, dump_json, stored_json
from ._journal import Journal
from ._persistent import PersistentActor
from ._records import EventData, EventRecord, SnapshotRecord

__all__ = ["EventSourcedActor"]

P = TypeVar("P", bound="Message[Any]", contravariant=True, default="Message[Any]")
S = TypeVar("S", bound=BaseModel, default=BaseModel)
E = TypeVar("E", bound=Event, default=Event)

_snapshot_failures = LogLimit(logging.getLogger("actorio.persistence"))


_FOUND = {
    "unsure": "the persist before this one, left unsure, turned out to be stored: the state now "
    "includes it; this command decided on the state before it and persisted nothing",
    "late": "a persist before this one, read back as not stored, was stored after all (its message "
    "arrived late): the state now includes it; this command decided on the state before it and "
    "persisted nothing",
}
"""Why a persist raised without writing: what the read-back before it found stored."""


class EventSourcedActor(PersistentActor[P], Generic[P, S, E]):
    """An actor whose state ``S`` (a pydantic model) changes only by events ``E`` (an `Event`
    class or a union of them) that it persists::

        class Account(EventSourcedActor[Deposit | GetBalance, Balance, Deposited | Withdrawn]):
            def apply(self, state: Balance, event: Deposited | Withdrawn) -> Balance: ...

            @handles(Deposit)
            async def deposit(self, msg: Deposit) -> int:
                await self.persist(Deposited(amount=msg.amount))
                return self.state.amount

    The contract:

    - A handler decides, then calls `persist` with one or more events. `persist` returns once
      the events are durable in the journal (all of them or none), and `state` is then the
      result of `apply` on each. The handler's reply, and the actor's next message, come after.
      If `persist` raises (`WriterConflict`: another writer of this id got there first; a
      journal error), nothing was applied and, for a conflict, nothing was written.
    - A journal error other than a conflict (no acknowledgement, a disk error) may or may not
      have written the events: `persist` reads them back. Written: it returns as if the append
      had. Not written: it raises, saying so, and the actor carries on. The read fails too: it
      raises the error, and the next `persist` reads back first; if the events turn out to be
      stored, the state includes them and that next `persist` raises `PersistenceError` without
      writing (its handler decided on the state before them). Events read back as not stored
      may still be stored later (a client re-sending what it buffered while reconnecting): the
      next `persist` then finds them the same way.
    - `apply` is pure: it returns the next state from a state and an event, and does nothing
      else (it runs again at every recovery). It is typed: applying an event that is not in
      ``E``, or persisting one, is an error for mypy and pyright.
    - Recovery (before the first message of each incarnation): `initial_state`, or the latest
      snapshot if its ``state_version`` is this class's (a snapshot of another version is left
      aside: the events are the truth), then every event after it, through `apply`. Stored
      events of older versions are upcast (see `Event`); one that no longer fits raises
      `SchemaMismatch` and the actor does not start.
    - ``snapshot_every = n`` (a class attribute; ``None``, the default, for never): a snapshot of
      the state is saved after each persist that crosses a multiple of ``n`` events. A snapshot
      that cannot be saved (a journal error, a NaN in the state) does not fail that persist,
      whose events are stored and applied: it is logged on ``actorio.persistence`` (within a
      limit), and the next multiple tries again. A snapshot beyond the journal's last event
      (the events after it lost) raises `JournalCorrupted` at recovery.
    - A persist cancelled while the journal writes (``asyncio.wait_for`` around it, the task
      cancelled) is unsure in the same way: the next `persist` reads back first.
    - JSON has no NaN or infinity: `persist` raises ``ValueError`` for an event that holds one,
      before anything is written or applied (it would be read back as ``null``).
    """

    snapshot_every: ClassVar[int | None] = None
    """Save a snapshot every this many events (``None``: never)."""

    state_version: ClassVar[int] = 1
    """The version of the state model, stored with each snapshot: raise it when the state's
    fields change, and the snapshots of the version before are left aside."""

    _persistence_state_type: ClassVar[type[BaseModel]]
    event_codec: ClassVar[EventCodec]
    """The codec of the class's events (made at class creation from ``E``): what writes them to
    the journal and reads stored ones back, for tools that read a journal."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in vars(cls).get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not (isinstance(origin, type) and issubclass(origin, EventSourcedActor)):
                continue
            arguments = typing.get_args(base)
            if len(arguments) != 3 or any(isinstance(a, typing.TypeVar) for a in arguments[1:]):
                continue
            state_type = arguments[1]
            if not (isinstance(state_type, type) and issubclass(state_type, BaseModel)):
                raise TypeError(
                    f"{cls.__qualname__}: the state type must be a pydantic model, not {state_type!r}"
                )
            cls._persistence_state_type = state_type
            cls.event_codec = EventCodec.of_annotation(arguments[2])
        every = cls.snapshot_every
        if every is not None and not (isinstance(every, int) and every >= 1):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"{cls.__qualname__}.snapshot_every must be None or an int >= 1")
        if "event_codec" in vars(cls) and cls.apply is EventSourcedActor.apply:
            raise TypeError(f"{cls.__qualname__} names its events but defines no apply(state, event)")

    def __init__(
        self,
        entity_id: str,
        journal: Journal,
        *,
        clock: Callable[[], float] | None = None,
        identifier: str | None = None,
        mailbox_capacity: int | None = None,
    ) -> None:
        super().__init__(
            entity_id, journal, clock=clock, identifier=identifier, mailbox_capacity=mailbox_capacity
        )
        if not hasattr(type(self), "event_codec"):
            raise TypeError(
                f"{type(self).__qualname__} must name its state and events: "
                "EventSourcedActor[Protocol, State, Event1 | Event2]"
            )
        self.state: S = self.initial_state()
        """The state: what `apply` made of the events so far."""
        self.sequence = 0
        """The number of the last event applied (0: none)."""
        self._persistence_unsure: tuple[list[EventData], S] | None = None
        """A persist that failed without saying whether it was written: its events, and the
        state they lead to."""
        self._persistence_late: list[tuple[list[EventData], S]] = []
        """The persists read back as not stored since the last stored one: their messages may
        still be stored (a client sending what it buffered while reconnecting, a cluster). All
        were appended after `sequence`, so the writer fence stores at most one of them; the next
        append's conflict, or the next read-back, says which."""

    def initial_state(self) -> S:
        """The state before any event: the state model made with no arguments, unless overridden."""
        return typing.cast("S", type(self)._persistence_state_type())

    def apply(self, state: S, event: E) -> S:
        """The state after ``event``: pure, as it runs again at every recovery."""
        raise NotImplementedError(f"{type(self).__qualname__} must define apply(state, event)")

    async def persist(self, *events: E) -> None:
        """Write ``events`` to the journal (all or none) and, once they are durable, apply them
        to `state`. See the class's contract."""
        if not events:
            return
        if self._persistence_unsure is not None:
            before_read = self.sequence
            found = await self._persistence_read_back_unsure()
            if found is not None:
                await self._persistence_snapshot_after(before_read)
                raise PersistenceError(f"{self.persistence_id}: {_FOUND[found]}")
        cls = type(self)
        encoded = [cls.event_codec.encode(event) for event in events]
        state = self.state
        for event in events:  # before the write: an apply that raises writes nothing
            state = self.apply(state, event)
        before = self.sequence
        try:
            self.sequence = await self.journal.append(self.persistence_id, before, encoded)
        except asyncio.CancelledError:
            # Cancelled (a timeout around persist, the task cancelled) while the journal writes:
            # the write goes on, or already went. Unsure: the next persist reads back first.
            self._persistence_unsure = (encoded, state)
            raise
        except WriterConflict as conflict:
            if self._persistence_late:  # it may be a persist read back as not stored, stored since
                found = await self._persistence_explain(conflict, self._persistence_read_back(None))
                if found is not None:
                    await self._persistence_snapshot_after(before)
                    raise PersistenceError(f"{self.persistence_id}: {_FOUND[found]}") from None
            raise
        except PersistenceError as error:
            # The journal cannot say whether the events were written: read them back.
            try:
                found = await self._persistence_read_back((encoded, state))
            except WriterConflict:
                raise
            except BaseException as unread:  # failed, or cancelled while it reads
                self._persistence_unsure = (encoded, state)  # the next persist reads back first
                if not isinstance(unread, PersistenceError) or isinstance(unread, JournalCorrupted):
                    raise
                raise PersistenceError(shorten(f"{error} (reading them back failed: {unread})")) from error
            if found is None:
                raise PersistenceError(f"{error} (read back: the events were not stored, so far)") from error
            if found == "late":
                await self._persistence_snapshot_after(before)
                raise PersistenceError(f"{self.persistence_id}: {_FOUND[found]}") from error
        else:
            self.state = state
            self._persistence_late.clear()  # the writer fence keeps them out now
        await self._persistence_snapshot_after(before)

    async def _persistence_snapshot_after(self, before: int) -> None:
        """After events were stored (by this persist, or by one found stored): the snapshot that
        crossing a multiple of ``snapshot_every`` calls for, if it can be saved. It only saves
        recovery time: a failure is logged, not raised (the persist's outcome is the events')."""
        every = type(self).snapshot_every
        if every is not None and self.sequence // every > before // every:
            try:
                await self.save_snapshot()
            except Exception as error:
                _snapshot_failures.log(
                    logging.WARNING,
                    "%s: the snapshot at event %d was not saved (%s); recovery replays the events",
                    self.persistence_id,
                    self.sequence,
                    repr(error)[:300],
                )

    async def _persistence_read_back(
        self, unsure: tuple[list[EventData], S] | None
    ) -> Literal["unsure", "late"] | None:
        """Read what is stored after `sequence`, for a persist left ``unsure`` and those read back
        as not stored before (`_persistence_late`); carry on from what was stored. At most as
        many events are read as the longest of those persists holds (memory stays bounded
        however many events were appended since).

        Nothing: ``None``, nothing changes (``unsure`` joins the late ones). The events of one of
        them (name, version and payload; the longest that matches, as one may begin like
        another; ``unsure`` of two alike): `state` and `sequence` become that persist's, and the
        return says which (``"unsure"`` or ``"late"``). Other events: another writer's,
        `WriterConflict`. A read that fails raises, and so does (`JournalCorrupted`) one that
        does not follow on from `sequence` event by event; nothing changes."""
        # The unsure one first: of two that match alike (one command retried), it is the latest.
        candidates = self._persistence_late if unsure is None else [unsure, *self._persistence_late]
        # Only as many events as the longest of them: whatever came after is not read.
        wanted = max((len(candidate[0]) for candidate in candidates), default=1)
        stored: list[EventRecord] = []
        records = self.journal.read(self.persistence_id, self.sequence)
        try:
            async for record in records:
                stored.append(record)
                if len(stored) >= wanted:
                    break
        finally:
            close = getattr(records, "aclose", None)  # at once: a journal's read holds a subscription
            if close is not None:
                await close()
        for index, record in enumerate(stored):  # as at recovery: a gap is not a late persist
            if record.sequence != self.sequence + 1 + index:
                follows = stored[index - 1].sequence if index else self.sequence
                raise out_of_order(self.persistence_id, record.sequence, follows)
        if not stored:
            self._persistence_late = candidates
            return None
        best: tuple[list[EventData], S] | None = None
        for candidate in candidates:
            encoded = candidate[0]
            mine = [(r.name, r.version, r.payload) for r in stored[: len(encoded)]]
            longer = best is None or len(encoded) > len(best[0])
            if longer and mine == [(e.name, e.version, e.payload) for e in encoded]:
                best = candidate
        if best is None:
            last = (
                stored[-1].sequence
                if len(stored) < wanted
                else await self.journal.last_sequence(self.persistence_id)
            )
            self._persistence_late = []
            raise WriterConflict(str(self.persistence_id), self.sequence, last)
        self._persistence_late = []
        self.state, self.sequence = best[1], self.sequence + len(best[0])
        return "unsure" if best is unsure else "late"

    async def save_snapshot(self) -> None:
        """Save the current state as the latest snapshot (also done every ``snapshot_every``).
        ``ValueError`` for a state holding a NaN or an infinite float (JSON has none)."""
        state = self.state
        payload = dump_json(state)
        check_stored(state, payload, f"the snapshot's {type(state).__qualname__}")
        cls = type(self)
        await self.journal.save_snapshot(
            SnapshotRecord(self.persistence_id, self.sequence, cls.state_version, payload)
        )

    async def recover(self) -> None:
        """The latest snapshot (if of this `state_version`), then the events after it."""
        cls = type(self)
        state = self.initial_state()
        sequence = 0
        snapshot = await self.journal.load_snapshot(self.persistence_id)
        if snapshot is not None and snapshot.version == cls.state_version:
            what = f"{self.persistence_id}: snapshot"
            state = decode_model(cls._persistence_state_type, stored_json(snapshot.payload, what), what)
            sequence = snapshot.sequence
        codec = cls.event_codec
        apply = self.apply
        async for record in self.journal.read(self.persistence_id, sequence):
            if record.sequence != sequence + 1:
                raise out_of_order(self.persistence_id, record.sequence, sequence)
            try:
                event = codec.decode(record.name, record.version, record.payload)
            except SchemaMismatch as error:  # said with where it is: the id and the event's number
                raise SchemaMismatch(f"{self.persistence_id}: event {record.sequence}: {error}") from None
            state = apply(state, typing.cast("E", event))
            sequence = record.sequence
        if snapshot is not None and sequence == snapshot.sequence and sequence > 0:
            last = await self.journal.last_sequence(self.persistence_id)
            if last < sequence:
                raise JournalCorrupted(
                    f"{self.persistence_id}: the snapshot is at event {sequence}, but the journal's "
                    f"last event is {last} (the events after {last} are lost)"
                )
        self.state = state
        self.sequence = sequence
        self._persistence_unsure = None
        self._persistence_late = []


# What the runtime and this class call or read on its actors, its settings, and the methods every
# handler of a persistent actor calls (``persist``, ``remind``): no handler of a subclass may take
# these names (a handler named ``recover`` or ``persist`` would replace what the others rely on).
reserve_handler_names(
    EventSourcedActor, *(name for name in vars(EventSourcedActor) if not name.startswith("_"))
)
