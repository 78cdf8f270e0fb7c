"""`PersistentActor`: what event-sourced and durable-state actors share: a persistence id on a
journal, recovery before the first message, and durable reminders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Literal, cast

from typing_extensions import TypeVar

from actorio import Actor, InvalidPayload, Message, dead_letters
from actorio.lowlevel import (
    AskRef,
    encode_wire,
    handler_for,
    mailbox_of,
    message_types_of,
    reserve_handler_names,
    shorten,
)

from ._errors import JournalCorrupted, PersistenceError, SchemaMismatch, WriterConflict
from ._journal import Journal
from ._records import PersistenceId, ReminderRecord

__all__ = ["PersistentActor"]

P = TypeVar("P", bound="Message[Any]", contravariant=True, default="Message[Any]")
T = TypeVar("T")


class PersistentActor(Actor[P], Generic[P]):
    """An actor whose state outlives its process: the base of `EventSourcedActor` and
    `DurableStateActor` (subclass one of those).

    ``entity_type`` (a class attribute, the class name by default) and the ``entity_id`` given
    to the constructor make its `persistence_id`; ``journal`` is where it is kept. Its state is
    recovered in `mainloop_setup`, before the first message, in each incarnation (a restart by
    its supervisor recovers again): a subclass that overrides `mainloop_setup` calls
    ``await super().mainloop_setup()`` first. If recovery fails on what is stored
    (`JournalCorrupted`, `SchemaMismatch`) and the incarnation ends with that error (its
    supervisor restarts it), the messages waiting in the mailbox are handled as if their handler
    had raised it (asks fail with it, tells are dead letters ``failed``), not kept for a restart
    that would fail the same way (`pre_restart` does it: an override calls its base's). A
    subclass may catch the error in its ``mainloop_setup`` and go on (from an empty state, say):
    then nothing is refused.

    **Reminders** (`remind`): a message stored in the journal and told to the actor at a time,
    also if the process stopped meanwhile: each incarnation schedules the reminders it finds.
    A reminder fires at least once: it is deleted from the journal after its handler returned,
    so a crash in between fires it again after the restart. Its due time is ``clock()`` +
    delay, where ``clock`` (a constructor argument) is ``time.time`` by default; it waits on the
    event loop's clock, so the mock clock drives it in tests (pass ``clock=mock_clock.time`` to
    keep due times on the mock clock across incarnations too). A stored reminder whose message
    no longer validates against the actor's protocol fails the recovery with `SchemaMismatch`
    naming the persistence id and the reminder.
    """

    entity_type: ClassVar[str]
    """The kind of entity (``"account"``): with the entity id, the persistence id. Letters,
    digits, ``_`` and ``-``; the class name unless the class sets it."""

    _persistence_unsure: Any
    """A write that failed without saying whether it was stored (in its kind's form: events and
    their state, or a state's payload), until it is read back; ``None`` if there is none."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "entity_type" not in vars(cls):
            cls.entity_type = cls.__name__
        PersistenceId(cls.entity_type, "x")  # the name's rules, checked at class creation

    def __init__(
        self,
        entity_id: str,
        journal: Journal,
        *,
        clock: Callable[[], float] | None = None,
        identifier: str | None = None,
        mailbox_capacity: int | None = None,
    ) -> None:
        persistence_id = PersistenceId(type(self).entity_type, entity_id)
        super().__init__(identifier=identifier or str(persistence_id), mailbox_capacity=mailbox_capacity)
        self.persistence_id = persistence_id
        """Whose records this actor reads and writes."""
        self.journal = journal
        """Where they are kept."""
        self.clock: Callable[[], float] = clock or time.time
        """The clock of reminders' due times (seconds)."""
        self._persistence_reminders: dict[str, asyncio.Future[None]] = {}
        """The wait of each reminder scheduled and not fired yet, by name (set when it is due)."""
        self._persistence_recovery: asyncio.Future[None] | None = None

    async def mainloop_setup(self) -> None:
        """Recover the state (`recover`), then schedule the stored reminders."""
        await super().mainloop_setup()
        try:
            await self.recover()
            protocol = type(self).protocol
            for reminder in await self.journal.load_reminders(self.persistence_id):
                try:
                    message = protocol.validate(reminder.message)
                except InvalidPayload as error:  # said with whose reminder it is
                    raise SchemaMismatch(
                        shorten(f"{self.persistence_id}: the stored reminder {reminder.name!r}: {error}")
                    ) from None
                self._schedule(reminder.name, reminder.due, message)
        except BaseException as error:
            recovery = self._recovery_future()
            if not recovery.done():
                recovery.set_exception(error if isinstance(error, Exception) else RuntimeError(repr(error)))
            raise
        recovery = self._recovery_future()
        if not recovery.done():
            recovery.set_result(None)

    async def pre_restart(self, error: BaseException | None) -> None:
        """If this incarnation ends because its recovery failed on what is stored
        (`JournalCorrupted`, `SchemaMismatch`), the messages waiting for the next one are handled
        as if their handler had raised that error (see the class). A subclass that overrides it
        calls ``await super().pre_restart(error)``."""
        await super().pre_restart(error)
        if isinstance(error, (JournalCorrupted, SchemaMismatch)) and error is self.recovery_error:
            self._refuse_waiting(error)

    def _refuse_waiting(self, error: PersistenceError) -> None:
        """The recovery failed on what is stored (``error``): no incarnation can recover until the
        journal is repaired or the model fits it, so the messages waiting in the mailbox are not
        kept for the next one. Each is treated as if its handler had raised ``error``: an ask
        fails with it, a tell is a dead letter ``failed`` (a durable mailbox's rules then apply to
        it). Messages that arrive later wait for the next incarnation, whose recovery fails them
        again if nothing changed (a supervisor restarts it after its backoff)."""
        mailbox = mailbox_of(self)
        if mailbox is None:
            return
        # In queue order: each one withdrawn is at the front, behind the signals kept.
        waiting: list[Message[Any]] = [item for item in mailbox.queue if isinstance(item, Message)]
        for item in waiting:
            if not mailbox.withdraw(item):
                continue
            sender = item.sender
            if type(sender) is AskRef:
                sender.fail(error)  # (nothing, if its asker gave up already)
                continue
            dead_letters.record(item, self.identifier, "failed", error)

    def _recovery_future(self) -> asyncio.Future[None]:
        if self._persistence_recovery is None:
            self._persistence_recovery = asyncio.get_running_loop().create_future()
            # The actor's own end reports a failed recovery; nobody has to wait for this one.
            self._persistence_recovery.add_done_callback(lambda future: future.exception())
        return self._persistence_recovery

    @property
    def recovered(self) -> bool:
        """True once this incarnation has recovered its state (its messages then see it)."""
        recovery = self._persistence_recovery
        return recovery is not None and recovery.done() and recovery.exception() is None

    @property
    def recovery_error(self) -> BaseException | None:
        """What this incarnation's recovery raised, if it failed; ``None`` while it recovers, once
        it recovered, or before it started."""
        recovery = self._persistence_recovery
        return recovery.exception() if recovery is not None and recovery.done() else None

    async def wait_recovered(self) -> None:
        """Return once this incarnation has recovered its state (its first message then sees
        it); raise what recovery raised if it failed. `start` may return before recovery, which
        runs in the actor's task."""
        await asyncio.shield(self._recovery_future())

    async def recover(self) -> None:
        """Read the state back from the journal (event-sourced and durable-state actors each
        define it)."""
        raise NotImplementedError

    # -- reminders --------------------------------------------------------------------------

    async def _persistence_read_back(self, unsure: Any) -> Literal["unsure", "late"] | None:
        """Read back what is stored for the write left ``unsure`` (and those read back as not
        stored before), carrying on from it (each kind of actor defines it)."""
        raise NotImplementedError

    async def _persistence_read_back_unsure(self) -> Literal["unsure", "late"] | None:
        """Read back the write left unsure (before the next write, or before a handler that must
        see the state as stored): what `_persistence_read_back` found. If the read fails, it
        raises and the write stays unsure, as it does if the read is cancelled (a timeout around
        the write that reads back first); a `WriterConflict` raises and ends it."""
        unsure, self._persistence_unsure = self._persistence_unsure, None
        try:
            return await self._persistence_read_back(unsure)
        except WriterConflict:
            raise
        except BaseException:
            self._persistence_unsure = unsure
            raise

    async def _persistence_explain(self, conflict: WriterConflict, read_back: Awaitable[T]) -> T:
        """``read_back``'s answer, for a ``conflict`` that one of this actor's own writes, read back
        as not stored and stored since, may explain. If the read fails: a `PersistenceError`
        saying that nothing was written (not the conflict: the other writer may be this actor);
        `JournalCorrupted` if what it read is, as it is."""
        try:
            return await read_back
        except (WriterConflict, JournalCorrupted):
            raise
        except PersistenceError as unread:
            raise PersistenceError(
                f"{self.persistence_id}: nothing was written: the journal holds more than this actor "
                "knows (another writer's, or a write of its own read back as not stored, stored "
                f"since), and reading it back failed ({unread}); the next write reads it back first"
            ) from conflict

    async def remind(self, name: str, message: P, delay: float) -> None:
        """Tell this actor ``message`` in ``delay`` seconds, durably: returns once the reminder
        is in the journal. A reminder of the same name is replaced (its timer with it).
        ``message`` is stored in its wire form (its ``sender`` is not kept), so it must be one of
        the actor's message types: ``TypeError`` (nothing stored) for a message outside the
        protocol, ``ValueError`` for one whose wire form the protocol would not read back (made
        with ``model_construct``, say), as for a due time that is not a finite number (a
        ``delay`` of NaN or infinity, or an ``int`` beyond a float's range)."""
        protocol, members = type(self).protocol, message_types_of(type(self))
        if not isinstance(message, members):
            accepted = " | ".join(member.__name__ for member in members)
            raise TypeError(
                f"reminder {name!r} of {self.persistence_id}: {type(message).__name__} is not a "
                f"message of its protocol ({accepted})"
            )
        payload = encode_wire(message)
        try:
            protocol.validate(payload)
        except InvalidPayload as error:  # it would fail every recovery of this id
            raise ValueError(
                shorten(f"reminder {name!r} of {self.persistence_id}: its message does not validate: {error}")
            ) from None
        try:
            due = self.clock() + delay
        except OverflowError:  # an int delay too large for a float
            raise ValueError(
                f"reminder {name!r} of {self.persistence_id}: due in {shorten(repr(delay))} s is not a "
                "finite number of seconds"
            ) from None
        record = ReminderRecord(self.persistence_id, name, due, payload)
        await self.journal.save_reminder(record)
        self._schedule(name, due, message)

    async def cancel_reminder(self, name: str) -> None:
        """Forget the reminder ``name`` (if any); it does not fire, in this incarnation or later."""
        self._persistence_stop_timer(name)
        await self.journal.delete_reminder(self.persistence_id, name)

    @property
    def reminders(self) -> frozenset[str]:
        """The names of the reminders scheduled and not yet fired."""
        return frozenset(self._persistence_reminders)

    def _schedule(self, name: str, due: float, message: Any) -> None:
        """Tell ``message`` at ``due`` (on `clock`) through an input task, replacing the timer of
        a reminder of the same name: its wait is cancelled now, not left to end at its own due
        time (a reminder re-armed at every message would pile up waits)."""
        self._persistence_stop_timer(name)
        loop = asyncio.get_running_loop()
        timer: asyncio.Future[None] = loop.create_future()
        ringing = loop.call_later(max(0.0, due - self.clock()), _ring, timer)
        timer.add_done_callback(lambda _: ringing.cancel())  # cancelled: the loop forgets it now
        self._persistence_reminders[name] = timer

        async def fire(task: asyncio.Future[Any]) -> None:
            if self._persistence_reminders.get(name) is not timer:
                return  # cancelled or replaced meanwhile
            message_type: type[Message[Any]] = type(cast("Message[Any]", message))
            handler, _ = handler_for(type(self), message_type)
            await handler(self, message)
            if self._persistence_reminders.get(name) is timer:
                del self._persistence_reminders[name]
                await self.journal.delete_reminder(self.persistence_id, name)

        self.register_input_task(lambda: timer, fire, count=1)

    def _persistence_stop_timer(self, name: str) -> None:
        """Cancel the wait of the reminder ``name`` (if any): its input task ends at once."""
        timer = self._persistence_reminders.pop(name, None)
        if timer is not None:
            timer.cancel()


def _ring(timer: asyncio.Future[None]) -> None:
    """A reminder's time has come (unless its wait was cancelled meanwhile)."""
    if not timer.done():
        timer.set_result(None)


# What the runtime and this class call or read on its actors, its settings, and the methods every
# handler of a persistent actor calls (``persist``, ``remind``): no handler of a subclass may take
# these names (a handler named ``recover`` or ``persist`` would replace what the others rely on).
reserve_handler_names(PersistentActor, *(name for name in vars(PersistentActor) if not name.startswith("_")))
