"""`DurableStateActor`: an actor whose whole state is saved after each message that changed it,
with a revision for optimistic concurrency."""

from __future__ import annotations

import asyncio
import functools
import typing
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Literal

from pydantic import BaseModel
from typing_extensions import TypeVar

from actorio import Actor, EndMainLoop, Message
from actorio.lowlevel import HANDLES_ATTRIBUTE, reserve_handler_names, shorten

from ._errors import JournalCorrupted, PersistenceError, WriterConflict
from ._events import check_stored, declared_upcasters, decode_model, dump_json, load_json, stored_json, upcast
from ._journal import Journal
from ._persistent import PersistentActor

__all__ = ["DurableStateActor"]

P = TypeVar("P", bound="Message[Any]", contravariant=True, default="Message[Any]")
S = TypeVar("S", bound=BaseModel, default=BaseModel)


_SAVING = "__actorio_saves_state__"
"""Marks a handler that saves the state after it, so that a subclass does not wrap it twice."""


_SAVED_LATE = (
    "a save before this one, read back as not saved, was saved after all (its message arrived "
    "late): the state is now that one; this message's changes were not saved"
)


class DurableStateActor(PersistentActor[P], Generic[P, S]):
    """An actor whose state ``S`` (a pydantic model) is saved whole, after each message that
    changed it::

        class Counter(DurableStateActor[Increment, Count]):
            @handles(Increment)
            async def increment(self, msg: Increment) -> int:
                self.state = Count(value=self.state.value + 1)  # saved when the handler returns
                return self.state.value

    The contract:

    - After each handled message (a handler of the class, its ``handle_message`` if it has its
      own, a durable reminder), if `state` is not what was last saved (compared in its JSON
      form, so a state changed in place counts too), it is saved, if the journal's revision is
      still `revision` (the one this actor recovered or last saved). The reply of an ask, and
      the next message, come only once the save is durable. A message that changed nothing
      writes nothing.
    - If another writer saved this id meanwhile, the save raises `WriterConflict` (at the asker,
      or to the supervisor for a told message) and writes nothing. A handler that raises saves
      nothing either. In both cases `state` goes back to what was last saved.
    - `save` writes at once, in the middle of a handler (before telling another actor that it
      is done, say).
    - If the journal fails otherwise (no acknowledgement, a disk error), the actor reads the
      state back to learn whether the save was written: if it was, it carries on from it as if
      the save had returned; if it was not, the error is raised and `state` goes back to what was
      last saved; if it cannot read it back either, the error is raised and the next save reads
      it back first (`PersistenceError` says which). A save read back as not saved may still
      be stored later (a client re-sending what it buffered while reconnecting): the next save
      finds it, takes that state, and raises `PersistenceError` for its own message's changes.
      A save cancelled while the journal writes (a timeout around `save`) is unsure in the same
      way: the next save reads it back first.
    - Before the first message of each incarnation, the state is read back (`initial_state` if
      none was saved). A stored state of an older ``state_version`` goes through the class's
      upcasters (`upcaster`, declared on the actor class, inherited) up to its version, and is
      saved in that version by the next message that changes it; a version newer than the
      class's, a missing step, or a field the model no longer declares raises `SchemaMismatch`.
    """

    state_version: ClassVar[int] = 1
    """The version of the state model, stored with the state: raise it when the model's fields
    change, and declare the step from the version before with `upcaster` on the actor class."""

    state_upcasters: ClassVar[dict[int, str]] = {}
    """from version -> the name of the classmethod that upcasts a stored state from it (filled
    at class creation, from the class and its bases)."""

    _persistence_state_type: ClassVar[type[BaseModel]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Before the dispatch table is built (by the base classes): it takes each handler by name.
        names = {
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if hasattr(value, HANDLES_ATTRIBUTE)
        }
        if cls.handle_message is not Actor.handle_message:
            names.add("handle_message")
        for name in names:
            handler: Callable[[Any, Any], Awaitable[Any]] = getattr(cls, name)
            if not hasattr(handler, _SAVING):
                setattr(cls, name, DurableStateActor._persistence_saving_after(handler))
        super().__init_subclass__(**kwargs)
        cls.state_upcasters = declared_upcasters(
            cls, cls.state_version, "state_version", reversed(cls.__mro__)
        )
        for base in vars(cls).get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not (isinstance(origin, type) and issubclass(origin, DurableStateActor)):
                continue
            arguments = typing.get_args(base)
            if len(arguments) != 2 or isinstance(arguments[1], typing.TypeVar):
                continue
            state_type = arguments[1]
            if not (isinstance(state_type, type) and issubclass(state_type, BaseModel)):
                raise TypeError(
                    f"{cls.__qualname__}: the state type must be a pydantic model, not {state_type!r}"
                )
            cls._persistence_state_type = state_type

    @staticmethod
    def _persistence_saving_after(
        handler: Callable[[Any, Any], Awaitable[Any]],
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        """``handler``, followed by a save of the state if it changed (see the class)."""

        @functools.wraps(handler)  # keeps the @handles declaration: the dispatch table sees the same types
        async def handle_then_save(self: DurableStateActor[Any, Any], message: Any) -> Any:
            if self._persistence_unsure is not None:
                await self._persistence_read_back_unsure()  # the handler must see the state as stored
            try:
                result = await handler(self, message)
            except EndMainLoop:
                await self._persistence_save_if_changed()  # a clean stop: what the handler did counts
                raise
            except BaseException:
                self._persistence_roll_back()
                raise
            await self._persistence_save_if_changed()
            return result

        setattr(handle_then_save, _SAVING, True)
        return handle_then_save

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
        if not hasattr(type(self), "_persistence_state_type"):
            raise TypeError(
                f"{type(self).__qualname__} must name its state: DurableStateActor[Protocol, State]"
            )
        self.state: S = self.initial_state()
        """The state: saved after each message that changed it."""
        self.revision = 0
        """The journal's revision of the state last saved (0: never saved)."""
        self._persistence_saved = dump_json(self.state)
        """The JSON form of the state last saved (or recovered): what a change is measured against."""
        self._persistence_unsure: bytes | None = None
        """The payload of a save that failed without saying whether it was written."""
        self._persistence_late: list[bytes] = []
        """The payloads of the saves read back as not saved since the last saved one: their
        messages may still be stored (a client sending what it buffered while reconnecting, a
        cluster). All expected `revision`, so the journal stores at most one of them; the next
        save's conflict, or the next read-back, says which."""

    def initial_state(self) -> S:
        """The state before any save: the state model made with no arguments, unless overridden."""
        return typing.cast("S", type(self)._persistence_state_type())

    async def save(self, state: S | None = None) -> None:
        """Make ``state`` (the current `state` if none is given) the state and write it now, if it
        is not what was last saved; return once it is durable. `WriterConflict` if another writer
        saved this id since: nothing written, `state` back to what was last saved."""
        if state is not None:
            self.state = state
        await self._persistence_save_if_changed()

    async def _persistence_save_if_changed(self) -> None:
        payload = dump_json(self.state)
        if payload == self._persistence_saved:
            return
        try:
            check_stored(self.state, payload, type(self.state).__qualname__)
        except ValueError:
            self._persistence_roll_back()
            raise
        if self._persistence_unsure is not None:  # a handler that caught an unsure save saves again
            state = self.state
            try:
                await self._persistence_read_back_unsure()
            except BaseException:  # failed or cancelled: nothing written, as a failed save
                self._persistence_roll_back()
                raise
            self.state = state
            if payload == self._persistence_saved:
                return
        try:
            self.revision = await self.journal.save_state(
                self.persistence_id, self.revision, type(self).state_version, payload
            )
        except asyncio.CancelledError:
            # Cancelled while the journal writes: the write goes on, or already went. Unsure:
            # the next save reads back first.
            self._persistence_unsure = payload
            self._persistence_roll_back()
            raise
        except WriterConflict as conflict:
            if self._persistence_late:  # it may be a save read back as not saved, stored since
                try:
                    found = await self._persistence_explain(conflict, self._persistence_read_back(None))
                except PersistenceError:
                    self._persistence_roll_back()
                    raise
                if found is not None:
                    raise PersistenceError(f"{self.persistence_id}: {_SAVED_LATE}") from None
            self._persistence_roll_back()
            raise
        except PersistenceError as error:
            try:
                found = await self._persistence_read_back(payload)
            except WriterConflict:
                raise
            except BaseException as unread:  # failed, or cancelled while it reads
                self._persistence_unsure = payload  # the next save reads it back first
                self._persistence_roll_back()
                if not isinstance(unread, PersistenceError) or isinstance(unread, JournalCorrupted):
                    raise
                raise PersistenceError(shorten(f"{error} (reading it back failed: {unread})")) from error
            if found is None:
                raise PersistenceError(f"{error} (read back: the state was not saved, so far)") from error
            if found == "late":
                raise PersistenceError(f"{self.persistence_id}: {_SAVED_LATE}") from error
            return
        self._persistence_saved = payload
        self._persistence_late.clear()  # the revision check keeps them out now

    async def _persistence_read_back(self, unsure: bytes | None) -> Literal["unsure", "late"] | None:
        """Read the stored state, for a save left ``unsure`` and those read back as not saved
        before (`_persistence_late`); carry on from what is stored.

        Not saved (the revision is this actor's): ``None``, `state` goes back to what was last
        saved (``unsure`` joins the late ones). One of them (the stored revision is a later one
        and its state byte for byte that save's): `revision` and `state` are that save's, and
        the return says which (``"unsure"`` or ``"late"``). Anything else was written by another
        writer: `WriterConflict`. A read that fails raises; nothing changes."""
        stored = await self.journal.load_state(self.persistence_id)
        found = 0 if stored is None else stored.revision
        candidates = self._persistence_late if unsure is None else [*self._persistence_late, unsure]
        if stored is not None and found > self.revision and stored.payload in candidates:
            self._persistence_late = []
            payload = stored.payload
            self.state = typing.cast("S", load_json(type(self)._persistence_state_type, payload))
            self.revision, self._persistence_saved = found, payload
            return "unsure" if payload == unsure else "late"
        self._persistence_roll_back()
        if found != self.revision:
            self._persistence_late = []
            raise WriterConflict(str(self.persistence_id), self.revision, found)
        self._persistence_late = candidates
        return None

    def _persistence_roll_back(self) -> None:
        """`state` back to what was last saved (a state changed in place is made again)."""
        if dump_json(self.state) != self._persistence_saved:
            self.state = typing.cast(
                "S", load_json(type(self)._persistence_state_type, self._persistence_saved)
            )

    async def recover(self) -> None:
        """The state saved last, or `initial_state`."""
        cls = type(self)
        self._persistence_unsure = None
        self._persistence_late = []
        record = await self.journal.load_state(self.persistence_id)
        if record is None:
            self.state, self.revision = self.initial_state(), 0
            self._persistence_saved = dump_json(self.state)
            return
        what = f"{self.persistence_id}: stored state version {record.version}"
        fields = stored_json(record.payload, what)
        fields = upcast(cls, cls.state_upcasters, fields, record.version, cls.state_version, what)
        stored = record.version == cls.state_version
        self.state = decode_model(cls._persistence_state_type, fields, what, stored=stored)
        self.revision = record.revision
        self._persistence_saved = dump_json(self.state)


# What the runtime and this class call or read on its actors, its settings, and the methods every
# handler of a persistent actor calls (``persist``, ``remind``): no handler of a subclass may take
# these names (a handler named ``recover`` or ``persist`` would replace what the others rely on).
reserve_handler_names(
    DurableStateActor, *(name for name in vars(DurableStateActor) if not name.startswith("_"))
)
