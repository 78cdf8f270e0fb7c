"""Persistent entities: a hosted type whose entities keep their state in a journal, and the durable
reminders of those entities.

Owns:

- `EntityJournal`: the journal as one activation sees it. Reads go through; every write (events,
  snapshot, state, reminder) is refused with `EntityFenced` once the activation's lease is over
  by its node's clock (or the activation is gone), and the reminder writes keep the type's index
  of due reminders up to date;
- `Reminders`: that index, a JetStream key-value bucket per type (``<bucket>_due``: entity key ->
  the earliest due time of its reminders), watched by each hosting node; each node wakes the due
  keys that rendezvous hashing over the type's live hosts gives it, by sending the key an empty
  message marked ``Actorio-Wake``: the key is activated (wherever the bucket of placements says),
  recovers, and fires its due reminders itself (``PersistentActor`` schedules what it finds);
- when a persistent actor's incarnation may be handed stored messages (`ready_for_messages`:
  once it has recovered), whether it ended because its recovery failed (`recovery_failed`),
  and the wait for a durable key's first start (`failed_start`: a recovery that fails is a
  failed start of the key).

The NATS layer does not import ``actorio.persistence``: a persistent actor is recognised by what it
has (``persistence_id``, ``journal``, ``clock``), and the journal is used through its interface.
See docs/entities.md ("State").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from .. import Actor, ActorioException
from ..lowlevel import LogLimit, Mailbox, task_of
from ._placement import BucketFull, check_key, full_bucket, rendezvous
from ._stream_setup import bucket_found_or_made

if TYPE_CHECKING:
    from actorio.persistence import Journal, PersistenceId, ReminderRecord

    from ._entities import Entities
    from ._entity_host import EntityHost

__all__ = [
    "DUE_MAX_BYTES",
    "WAKE",
    "EntityFenced",
    "EntityJournal",
    "Reminders",
    "failed_start",
    "is_persistent",
    "ready_for_messages",
    "recovery_failed",
]

_logger = logging.getLogger("actorio.nats")

WAKE = "Actorio-Wake"
"""Marks an empty told message that only activates its key: to fire its due reminders, or
(a durable type) to have its shard's pump fetch what was stored for it."""

_MAX_DUE_BYTES = 64
_MAX_INDEXED = 1_000_000

DUE_MAX_BYTES = 256 * 1024**2
"""The default size bound of a persistent type's index of due reminders (256 MiB: about the
million keys with reminders a node follows; an entry is a key and a time, about 250 bytes stored,
and a deleted one leaves a marker of about the same size)."""


class EntityFenced(ActorioException):
    """A persistent entity tried to write to its journal after its lease was over (by its node's
    clock), or after its activation ended: nothing was written. Another activation may own the
    key now; this one is being stopped."""


def is_persistent(actor: object) -> bool:
    """Whether ``actor`` keeps its state in a journal (a ``PersistentActor``, read by its shape)."""
    journal = getattr(actor, "journal", None)
    return getattr(actor, "persistence_id", None) is not None and hasattr(journal, "save_reminder")


def recovery_failed(actor: Actor[Any]) -> bool:
    """Whether ``actor``, an incarnation of a persistent actor (read by its shape), ended with the
    error its recovery raised; False for any other actor, and for one that caught the error."""
    error = getattr(actor, "recovery_error", None) if is_persistent(actor) else None
    task = task_of(actor)
    if error is None or task is None or not task.done() or task.cancelled():
        return False
    return task.exception() is error


def ready_for_messages(actor: Actor[Any], mailbox: Mailbox) -> bool:
    """Whether ``actor``, the incarnation reading ``mailbox``, may be handed stored messages: at
    once if it is not persistent (read by its shape); a persistent one once it has recovered its
    state, or once its mainloop waits for messages (its setup is over without a recovery: a
    subclass that does not call its base's ``mainloop_setup``, or caught its error and goes on).
    (A waiting future that is done is a former incarnation's: cancelled, or woken to stop.)"""
    if not is_persistent(actor) or getattr(actor, "recovered", True):
        return True
    waiting = mailbox.waiting
    return waiting is not None and not waiting.done()


async def failed_start(
    actor: Actor[Any], mailbox: Mailbox, stopping: Callable[[], bool]
) -> BaseException | None:
    """Once ``actor`` (the incarnation reading ``mailbox``, just started) is ready for messages
    (see `ready_for_messages`): ``None``; if it ended first, what ended it (its recovery or its
    setup raised; ``None`` for a stop). At once ``None`` for an actor that is not persistent, and
    ``None`` as soon as ``stopping()`` (its caller stops: the incarnation is stopped with it)."""
    ending = task_of(actor)
    if not is_persistent(actor) or ending is None:
        return None
    wait_recovered = getattr(actor, "wait_recovered", None)
    recovered = None if wait_recovered is None else asyncio.ensure_future(wait_recovered())
    try:
        while not ready_for_messages(actor, mailbox) and not ending.done() and not stopping():
            # Woken as it recovers or ends; a setup over without a recovery (its mainloop waiting
            # for messages) and the caller stopping are looked at every 50 ms.
            waits: list[asyncio.Future[Any]] = [ending]
            if recovered is not None and not recovered.done():
                waits.append(recovered)
            await asyncio.wait(waits, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if recovered is not None:
            if recovered.done():
                _ = recovered.cancelled() or recovered.exception()  # retrieved: not logged
            else:
                recovered.cancel()
    return ending.exception() if ending.done() and not ending.cancelled() else None


class EntityJournal:
    """The journal of one activation of a persistent entity (see the module). It has the methods
    of ``actorio.persistence.Journal``; closing it does nothing (the host's journal is shared).
    The reminders of ``persistence_id`` (the activation's own) make the index entry of ``key``;
    another id's are read and written through."""

    def __init__(
        self,
        journal: Journal,
        may_write: Callable[[], bool],
        reminders: Reminders,
        key: str,
        persistence_id: PersistenceId,
    ) -> None:
        self.journal = journal
        self._may_write = may_write
        self._reminders = reminders
        self._key = key
        self._own = persistence_id
        """The activation's own persistence id: its reminders are the index entry of ``key``."""
        self._dues: dict[str, float] | None = None
        """The id's reminders (name -> due) as this activation last read or wrote them; ``None``
        while unknown (not read yet, or a write of them failed): read from the journal."""
        self._reminder_writes = asyncio.Lock()  # one at a time: each changes ``_dues``

    def _fence(self, persistence_id: object) -> None:
        if not self._may_write():
            raise EntityFenced(
                f"{persistence_id}: this activation's lease is over; another may own the key: "
                "nothing was written"
            )

    # -- reads -------------------------------------------------------------------------------

    def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[Any]:
        return self.journal.read(persistence_id, after)

    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        return await self.journal.last_sequence(persistence_id)

    async def load_snapshot(self, persistence_id: PersistenceId) -> Any:
        return await self.journal.load_snapshot(persistence_id)

    async def load_state(self, persistence_id: PersistenceId) -> Any:
        return await self.journal.load_state(persistence_id)

    async def persistence_ids(self) -> list[PersistenceId]:
        return await self.journal.persistence_ids()

    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        """The id's reminders; for the activation's own id, the index is set from them (the
        activation's recovery reads them: a wake-up of a key with nothing due clears its entry)."""
        if persistence_id != self._own:
            return await self.journal.load_reminders(persistence_id)
        async with self._reminder_writes:
            self._dues = None
            found = await self.journal.load_reminders(persistence_id)
            self._dues = {r.name: r.due for r in found}
            if self._may_write():
                await self._reminders.note_quietly(self._key, [r.due for r in found])
        return found

    # -- writes ------------------------------------------------------------------------------

    async def append(self, persistence_id: PersistenceId, expected_sequence: int, events: Any) -> int:
        self._fence(persistence_id)
        return await self.journal.append(persistence_id, expected_sequence, events)

    async def save_snapshot(self, snapshot: Any) -> None:
        self._fence(snapshot.persistence_id)
        await self.journal.save_snapshot(snapshot)

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        self._fence(persistence_id)
        return await self.journal.save_state(persistence_id, expected_revision, version, payload)

    async def _known_dues(self, persistence_id: PersistenceId) -> dict[str, float]:
        if self._dues is None:
            self._dues = {r.name: r.due for r in await self.journal.load_reminders(persistence_id)}
        return self._dues

    async def save_reminder(self, reminder: ReminderRecord) -> None:
        """The index first (so that a crash between the two leaves at worst a wake-up for
        nothing, never a reminder nobody wakes), then the journal. The index is computed from
        the reminders this activation knows: read once, not again at each write (firing ``n``
        reminders would read them ``n`` times). Another id's reminder (not the activation's
        own) is written through, the index left as it is."""
        persistence_id = reminder.persistence_id
        if persistence_id != self._own:
            self._fence(persistence_id)
            return await self.journal.save_reminder(reminder)
        async with self._reminder_writes:
            self._fence(persistence_id)  # (again: the lease may have ended while this waited)
            known = await self._known_dues(persistence_id)
            dues = {**known, reminder.name: reminder.due}
            # The earlier of the stored and the new due time while the write is unsure; the new
            # one once it is stored (moving a reminder later must not leave the entry late).
            await self._reminders.note(self._key, [*known.values(), reminder.due])
            self._dues = None  # unsure until stored: read again if the write fails
            await self.journal.save_reminder(reminder)
            self._dues = dues
            await self._reminders.note_quietly(self._key, list(dues.values()))

    async def delete_reminder(self, persistence_id: PersistenceId, name: str) -> None:
        """The journal first, then the index (from what is left)."""
        if persistence_id != self._own:
            self._fence(persistence_id)
            return await self.journal.delete_reminder(persistence_id, name)
        async with self._reminder_writes:
            self._fence(persistence_id)
            known, self._dues = self._dues, None  # unsure until deleted
            await self.journal.delete_reminder(persistence_id, name)
            left = dict(known) if known is not None else await self._known_dues(persistence_id)
            left.pop(name, None)
            self._dues = left
            await self._reminders.note_quietly(self._key, list(left.values()))

    async def close(self) -> None:
        """Nothing: the journal belongs to whoever gave it to the host."""


class Reminders:
    """The durable reminders of one persistent entity type, on one hosting node (see the module).

    ``clock`` is the clock of the reminders' due times (``time.time`` by default, the clock of
    ``PersistentActor``; set it, and make the entities with the same, to run on a mock clock);
    every ``scan_every`` seconds of the event loop's clock, the keys due by ``clock()`` that this
    node is responsible for are woken (at most ``max_per_scan`` per scan); a key still due is
    woken again every ``retry_every`` seconds, until its reminders are fired and deleted. At
    most a million keys with reminders are followed per type (a warning names the others).
    The index bucket is made with ``max_bytes`` (None: no bound) by the first node that opens it;
    a reminder that does not fit is refused (`BucketFull`, nothing stored).
    """

    def __init__(
        self,
        entities: Entities,
        entity_type: str,
        js: JetStreamContext,
        bucket: str,
        *,
        scan_every: float = 1.0,
        retry_every: float = 5.0,
        max_bytes: int | None = DUE_MAX_BYTES,
    ) -> None:
        self._entities = entities
        self.entity_type = entity_type
        self._js = js
        self.bucket = bucket
        self.max_bytes = max_bytes
        self.clock: Callable[[], float] = time.time
        self.scan_every = scan_every
        self.retry_every = retry_every
        self.max_per_scan = 1000
        """At most this many keys are woken per scan (the others at the next ones)."""
        self.due: dict[str, float] = {}
        """Each key with reminders, and the earliest due time among them (from the watch)."""
        self.woken = 0
        """How many wake-ups this node sent."""
        self._kv: KeyValue | None = None
        self._unsure: set[str] = set()
        """Keys whose last write by this node was not acknowledged (see `note`)."""
        self._sent: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._warnings = LogLimit(_logger)
        self._loop_time = asyncio.get_running_loop().time

    @staticmethod
    async def index(js: JetStreamContext, bucket: str, max_bytes: int | None) -> KeyValue:
        """The index bucket ``bucket``: bound if it exists, else made with ``max_bytes`` (None:
        no bound), read through its leader (`leader_read`); ``ValueError`` if it could not be
        made."""
        make = {
            "history": 1,
            "max_value_size": _MAX_DUE_BYTES,
            "max_bytes": -1 if max_bytes is None else max_bytes,
        }
        return await bucket_found_or_made(js, bucket, "a persistent entity type's reminders", make)

    async def open(self) -> None:
        """Make (or bind) the index bucket, and start watching it and waking due keys."""
        self._kv = await self.index(self._js, self.bucket, self.max_bytes)
        self._tasks = [
            asyncio.ensure_future(self._watch_forever()),
            asyncio.ensure_future(self._scan_forever()),
        ]

    async def close(self) -> None:
        """Stop watching and waking (the index stays: other hosts use it)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._unsure.clear()

    # -- the index -----------------------------------------------------------------------------

    async def note(self, key: str, dues: list[float]) -> None:
        """Set ``key``'s entry to the earliest of ``dues`` (remove it for none); `BucketFull` if
        the index is full."""
        kv = self._kv
        if kv is None:
            return
        # Written again whatever ``due`` says while a write of this node to the key is unsure (no
        # answer, or cancelled before its acknowledgement: it may be stored all the same). A
        # refusal stored nothing. (At most `_MAX_INDEXED` keys are kept so.)
        unsure = key in self._unsure
        if len(self._unsure) < _MAX_INDEXED:
            self._unsure.add(key)
        try:
            if dues:
                due = min(dues)
                if self.due.get(key) != due or unsure:
                    await kv.put(key, repr(due).encode())
                    self.due[key] = due
            elif key in self.due or unsure:  # (a key the watch has not shown is left: a wake-up clears it)
                with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                    await kv.delete(key)
                self.due.pop(key, None)
        except nats.js.errors.APIError as error:  # refused: nothing stored
            self._unsure.discard(key)
            full = full_bucket(error, self.bucket, f"the due time of {key!r}")
            if full is None:
                raise
            raise full from None
        self._unsure.discard(key)

    async def note_quietly(self, key: str, dues: list[float]) -> None:
        """`note`, logging a failure instead of raising it: for an entry that may only be too
        early (a wake-up for nothing clears it), never missing."""
        try:
            await self.note(key, dues)
        except (nats.errors.Error, asyncio.TimeoutError, BucketFull) as error:
            self._warnings.log(
                logging.WARNING, "%s: the due entry of %s not updated: %r", self.bucket, key, error
            )

    async def _watch_forever(self) -> None:
        """Follow the bucket; watch it again after an error (a lost connection, say)."""
        while True:
            try:
                assert self._kv is not None
                watcher = await self._kv.watchall()  # pyright: ignore[reportUnknownMemberType]  # nats-py: **kwargs
                await self._watch(watcher)
            except (nats.errors.Error, asyncio.TimeoutError) as error:
                self._warnings.log(logging.WARNING, "%s: watching again after %r", self.bucket, error)
                await asyncio.sleep(self.scan_every)

    async def _watch(self, watcher: Any) -> None:
        while True:
            try:
                entry = await watcher.updates(timeout=3600.0)
            except nats.errors.TimeoutError:
                continue
            if entry is None:  # the end of the initial values
                continue
            key = entry.key
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.due.pop(key, None)
                continue
            try:
                check_key(key)
                due = float(entry.value.decode("ascii"))
                if not math.isfinite(due):
                    raise ValueError("not a finite time")
            except (ValueError, TypeError, UnicodeDecodeError) as error:
                self._warnings.log(
                    logging.WARNING, "%s: a due entry %r is ignored: %r", self.bucket, key[:40], error
                )
                continue
            if key in self.due or len(self.due) < _MAX_INDEXED:
                self.due[key] = due
            else:
                self._warnings.log(
                    logging.WARNING,
                    "%s: over %d keys with reminders; %s is not followed",
                    self.bucket,
                    _MAX_INDEXED,
                    key,
                )

    # -- waking --------------------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scan_every)
            try:
                await self.scan()
            except Exception as error:  # a scan must not end the loop
                self._warnings.log(logging.WARNING, "%s: waking due reminders failed: %r", self.bucket, error)

    def mine(self, key: str) -> bool:
        """Whether this node wakes ``key``: rendezvous hashing over the type's live hosts (this
        node wakes every key while it knows of no host, itself included)."""
        entities = self._entities
        hosts = entities.hosts.live(self.entity_type)
        if not hosts:
            return True
        return rendezvous(key, hosts).node == entities.node_id

    async def scan(self) -> int:
        """Wake every key due by ``clock()`` that is this node's to wake and was not woken in the
        last ``retry_every`` seconds; the number woken."""
        now, then = self.clock(), self._loop_time()
        for key in [k for k, at in self._sent.items() if then - at >= self.retry_every or k not in self.due]:
            del self._sent[key]
        woken = 0
        for key, due in list(self.due.items()):
            if woken >= self.max_per_scan:
                break
            if due > now or key in self._sent or not self.mine(key):
                continue
            self._sent[key] = then
            ref = self._entities.ref(self.entity_type, key, None)
            try:
                await self._entities.publish(ref, b"", {WAKE: "1"})
            except Exception as error:
                self._warnings.log(
                    logging.WARNING, "%s/%s could not be woken: %r", self.entity_type, key, error
                )
                continue
            woken += 1
        self.woken += woken
        return woken


def persistent_factory(
    factory: Callable[..., Actor[Any]],
    journal: Journal | None,
    host: list[EntityHost],
    reminders: Reminders,
    clock: Callable[[], float],
) -> Callable[[str], Actor[Any]]:
    """The factory of a persistent type's activations: ``factory(key)``, or, given the
    ``journal``, ``factory(key, journal, clock=reminders.clock)`` (a persistent actor class);
    either way each persistent actor made gets an `EntityJournal`, fenced by ``clock`` by the
    lease of the activation holding the key (its own, or its shard's for a durable type) on
    ``host[0]`` (the type's `EntityHost`, once made)."""

    def make(key: str) -> Actor[Any]:
        actor = factory(key) if journal is None else factory(key, journal, clock=reminders.clock)
        if is_persistent(actor):
            made_on = getattr(actor, "journal")  # noqa: B009
            if isinstance(made_on, EntityJournal):
                made_on = made_on.journal
            # The NATS layer knows the actor by its shape only (it does not import persistence).
            own = getattr(actor, "persistence_id")  # noqa: B009
            fenced = EntityJournal(made_on, _may_write(host, key, clock), reminders, key, own)
            setattr(actor, "journal", fenced)  # noqa: B010
        return actor

    return make


def _may_write(host: list[EntityHost], key: str, clock: Callable[[], float]) -> Callable[[], bool]:
    def may_write() -> bool:
        activation = host[0].holder(key) if host else None
        lease = None if activation is None else activation.lease
        return lease is not None and lease.valid(clock())

    return may_write
