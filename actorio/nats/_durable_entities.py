"""Durable entity types: a JetStream mailbox per type, a subject per key, keys grouped in shards.

Owns:

- the names: the type's mailbox stream (`mailbox_stream`, work-queue retention) capturing
  ``<prefix>.mailbox.<type>.<shard>.<key>`` (`mailbox_subject`; a key's shard is `shard_of`, a
  stable digest of the key modulo the type's number of shards, ``Durable.shards``, noted in the
  stream's metadata), and its dead-letter stream (name ``entities.<type>``: subject
  ``<prefix>.dlq.entities.<type>``);
- `DurableSending`: a node's sending side. A tell (or an ask, with its reply address) to a key
  of a durable type is stored in the stream first (``tell`` returns once JetStream acknowledged
  it), then the key's *shard* is woken: an empty message routed as a plain one (``_entities``)
  to the shard, which the type's hosts place, lease and fence as a plain type's key; which
  types are durable, read from the server (a type is durable when its mailbox stream exists),
  with their number of shards;
- `DurableMailbox`: one hosted durable type. Each shard's activation gets a `ShardPump`
  (``_durable_shards``: the shard's consumer, its keys' entities); a wake just activates. The
  host scans the stream for shards with stored messages when it starts and every half lease,
  and wakes those nobody woke (a lost wake is recovered). A subject that names no shard's key
  (forged) has its messages dropped (``_forged_subjects``).

See docs/entities.md, "Durable entity types", for the guarantee and why it is shaped this way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from .. import Actor, ChildSpec, dead_letters
from ..lowlevel import LogLimit, Mailbox, inject, report_transport
from . import _forged_subjects as forged_subjects
from ._codec import REPLY, TIMEOUT, StoredAsk, answered
from ._dead_letter_stream import (
    DeadLetterStreams,
    DeliveryLimitReached,
    StoredDeadLetter,
    dead_letter_stream,
)
from ._durable import Durable, Streams
from ._durable_shards import ShardPump
from ._entity_persistence import WAKE
from ._errors import NO_JETSTREAM, jetstream_missing
from ._forwarding import LEASE
from ._keeper import PublicationSupervisor, Target
from ._placement import entity_name
from ._settlement import Failures
from ._stream_setup import made_or_kept

if TYPE_CHECKING:
    from ._entities import Entities
    from ._entity_host import Activation, EntityHost
    from ._entity_ref import EntityRef
    from ._publication import Receiver, Spawn

__all__ = [
    "SHARDS",
    "DurableMailbox",
    "DurableSending",
    "dead_letter_name",
    "mailbox_stream",
    "mailbox_subject",
    "shard_of",
]

_logger = logging.getLogger("actorio.nats")


SHARDS = "actorio.shards"
"""The mailbox stream's metadata key noting the type's number of shards (``Durable.shards``)."""

_MAX_CONSUMERS = 10_000  # the stream's max_consumers: a consumer per shard, and forged subjects'
_NOT_DURABLE_SECONDS = 5.0  # how long "this type has no mailbox stream" is believed
_MAX_WAKES_PER_SCAN = 1000  # shards woken by one scan of the stream (the next scan wakes the rest)


def mailbox_stream(prefix: str, entity_type: str) -> str:
    """The mailbox stream of a durable entity type: readable, and distinct for distinct pairs."""
    digest = hashlib.sha1(f"{prefix}.{entity_type}".encode()).hexdigest()[:8]
    return f"ENTITIES_{prefix.replace('.', '_')}_{entity_type}_{digest}".upper()


def shard_of(key: str, shards: int) -> int:
    """The shard of ``key`` among ``shards``: a digest of the key (the same in every process and
    every version, unlike ``hash()``), modulo ``shards``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def mailbox_subject(prefix: str, entity_type: str, key: str, shards: int = Durable.shards) -> str:
    """The subject of ``key``'s messages in its type's mailbox stream:
    ``<prefix>.mailbox.<type>.<shard>.<key>``, its shard among ``shards``."""
    return f"{prefix}.mailbox.{entity_type}.{shard_of(key, shards)}.{key}"


def dead_letter_name(entity_type: str) -> str:
    """The name of a durable entity type's dead-letter stream (``<prefix>.dlq.entities.<type>``)."""
    return f"entities.{entity_type}"


def _shards_in(metadata: dict[str, str] | None) -> int | None:
    """The number of shards a mailbox stream's metadata notes (None: none, or not a number)."""
    value = (metadata or {}).get(SHARDS, "")
    return int(value) if value.isascii() and value.isdigit() and 0 < len(value) < 6 else None


class _Shard(Actor):
    """The actor of a shard's activation: it handles nothing (the shard's pump feeds its keys'
    entities); it is what the host starts, supervises and stops for the shard."""


# -- sending -----------------------------------------------------------------------------------


class DurableSending:
    """A node's side of sending to durable entity types (see the module)."""

    def __init__(
        self,
        entities: Entities,
        *,
        streams: Streams,
        replies: dict[str, StoredAsk],
        receiver: Receiver,
    ) -> None:
        self._entities = entities
        self._nc: Client = entities._nc  # pyright: ignore[reportPrivateUsage]
        self._js: JetStreamContext = entities._js  # pyright: ignore[reportPrivateUsage]
        self._ask_timeout: float = entities._ask_timeout  # pyright: ignore[reportPrivateUsage]
        self._node_id = entities.node_id
        self.streams = streams
        self._replies = replies
        self._receiver = receiver
        self._durable: dict[str, float] = {}  # type -> until when the answer holds (inf: durable)
        self._shards: dict[str, int] = {}  # a durable type -> its number of shards
        self._waking: dict[tuple[str, int], bool] = {}  # shards being woken -> woken again after?
        self._wakes = LogLimit(_logger)

    async def durable(self, entity_type: str, timeout: float) -> bool:
        """Whether ``entity_type`` is durable: its mailbox stream exists (read once, and again
        every 5 s while it does not). Waits (up to ``timeout``) for a host of the type first."""
        entities = self._entities
        clock = asyncio.get_running_loop().time
        until = self._durable.get(entity_type)
        if until is not None and (until == float("inf") or until > clock()):
            return until == float("inf")
        # Waits for a host of the type: one that hosts it durably made the stream before its bucket.
        await entities._placements(entity_type, timeout)  # pyright: ignore[reportPrivateUsage]
        try:
            info = await self._js.stream_info(mailbox_stream(entities.prefix, entity_type))
        except nats.js.errors.NotFoundError:
            self._durable[entity_type] = clock() + _NOT_DURABLE_SECONDS
            return False
        self._shards[entity_type] = _shards_in(info.config.metadata) or Durable.shards
        self._durable[entity_type] = float("inf")
        return True

    async def prepare(self, entity_type: str, durable: Durable | None) -> None:
        """Before a host sets up ``entity_type``'s bucket: a durable type's streams (so that a
        sender that finds the bucket finds the stream); ``ValueError`` for a plain host of a type
        hosted durably."""
        prefix = self._entities.prefix
        if durable is not None:
            await DurableMailbox.set_up(
                self._js, self.streams.dead, prefix=prefix, entity_type=entity_type, settings=durable
            )
            self._shards[entity_type] = durable.shards
            self._durable[entity_type] = float("inf")
        elif await DurableMailbox.exists(self._js, prefix=prefix, entity_type=entity_type):
            raise ValueError(f"the entity type {entity_type!r} is hosted durably: host it with durable=")

    def mailbox(self, host: EntityHost, settings: Durable, lease: float) -> DurableMailbox:
        """The mailbox of ``host``'s durable type (opened once the host announces itself)."""
        entities = self._entities
        entity_type = host.entity_type

        async def wake(shard: int) -> None:
            if not entities._closed:  # pyright: ignore[reportPrivateUsage]
                await self.wake(entity_type, shard)  # (closing: its scan's wakes are moot)

        return DurableMailbox(
            host,
            self._js,
            self._nc,
            settings,
            prefix=entities.prefix,
            dead=self.streams.dead,
            receiver=self._receiver,
            spawn=entities._spawn,  # pyright: ignore[reportPrivateUsage]
            lease=lease,
            clock=entities._clock,  # pyright: ignore[reportPrivateUsage]
            wake=wake,
        )

    def _subject(self, ref: EntityRef[Any]) -> tuple[str, int]:
        """Where ``ref``'s messages are stored, and its shard (the type known durable)."""
        shards = self._shards.get(ref.entity_type, Durable.shards)
        shard = shard_of(ref.key, shards)
        return f"{self._entities.prefix}.mailbox.{ref.entity_type}.{shard}.{ref.key}", shard

    async def tell(self, ref: EntityRef[Any], body: bytes, headers: dict[str, str] | None) -> None:
        """Store a tell in the key's mailbox (returns once JetStream acknowledged it), then wake
        the key's shard."""
        subject, shard = self._subject(ref)
        await self.streams.store_at(subject, ref.identifier, body, headers, None)
        self.wake_soon(ref.entity_type, shard)

    async def request(self, ref: EntityRef[Any], body: bytes, timeout: float) -> Msg:
        """Store an ask, with this node's reply address, then wake the key's shard; the reply
        (sent once, by the activation that handled it: see docs/entities.md)."""
        prefix = self._entities.prefix
        token = uuid.uuid4().hex
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        stream = mailbox_stream(prefix, ref.entity_type)
        pending = self._replies[token] = StoredAsk(future, stream)
        headers = {TIMEOUT: repr(timeout), REPLY: f"{prefix}.reply.{self._node_id}.{token}"}
        inject(headers)
        report_transport("nats", "sent", "ask")

        async def store_then_wait() -> Msg:
            subject, shard = self._subject(ref)
            pending.stored(await self.streams.store_at(subject, ref.identifier, body, headers, None))
            self.wake_soon(ref.entity_type, shard)
            return await pending.future

        try:
            return await asyncio.wait_for(store_then_wait(), timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {timeout} s") from None
        finally:
            self._replies.pop(token, None)

    def wake_soon(self, entity_type: str, shard: int) -> None:
        """Wake ``shard`` in the background: a store's acknowledgement does not wait for the
        shard's route (which waits for a live host). One wake per shard at a time; a shard
        stored to again meanwhile is woken once more after it."""
        index = (entity_type, shard)
        if index in self._waking:
            self._waking[index] = True
            return
        self._waking[index] = False
        self._entities._spawn(self._wake_while_stored(index))  # pyright: ignore[reportPrivateUsage]

    async def _wake_while_stored(self, index: tuple[str, int]) -> None:
        try:
            while True:
                await self.wake(*index)
                if not self._waking.get(index):
                    return
                self._waking[index] = False
        finally:
            self._waking.pop(index, None)

    async def wake(self, entity_type: str, shard: int) -> None:
        """Wake ``shard`` of ``entity_type``: an empty message routed as a plain tell to the
        shard (so that it is activated where the placement says). Its failure is logged: the
        message is stored, and a host's scan of the stream wakes the shard later."""
        entities = self._entities
        try:
            ref = entities.ref(entity_type, str(shard), None)
            route = await entities.route(ref, self._ask_timeout)
            subject = entities.subject(entity_type, route.node, ref.key)
            await self._nc.publish(subject, b"", headers={LEASE: str(route.claim), WAKE: "1"})
        except Exception as error:
            self._wakes.log(
                logging.INFO, "%s/%d: not woken (%r); a host's scan will", entity_type, shard, error
            )


# -- hosting -----------------------------------------------------------------------------------


class DurableMailbox:
    """One durable entity type on one host: its streams, its shards' pumps and its scans."""

    def __init__(
        self,
        host: EntityHost,
        js: JetStreamContext,
        nc: Client,
        settings: Durable,
        *,
        prefix: str,
        dead: DeadLetterStreams,
        receiver: Receiver,
        spawn: Spawn,
        lease: float,
        clock: Callable[[], float],
        wake: Callable[[int], Awaitable[None]],
    ) -> None:
        self.host = host
        self.js = js
        self.nc = nc
        self.settings = settings
        self.prefix = prefix
        self.dead = dead
        self.receiver = receiver
        self.spawn = spawn
        self.lease = lease
        self.clock = clock
        self._wake = wake
        self.entity_type = host.entity_type
        self.shards = settings.shards
        self.stream = mailbox_stream(prefix, host.entity_type)
        self.dead_name = dead_letter_name(host.entity_type)
        self.failures = Failures()
        self.pumps: dict[str, ShardPump] = {}
        self.running: collections.OrderedDict[tuple[int, str], Any] = collections.OrderedDict()
        """The keys whose entity runs on this node (any shard), least recently handled first:
        what ``max_active`` counts for a durable type (``_durable_shards``)."""
        """The pump of each shard active here, by its key (the shard's number)."""
        self._scanner: asyncio.Task[None] | None = None
        self._forging: asyncio.Task[None] | None = None
        self.scan_every = max(lease / 2, 0.5)
        """Seconds between scans: a lost wake is recovered within two of them, once the shard
        is free (its old owner's lease expired)."""
        self._seen: set[int] = set()
        # The scan's answer lists every key with stored messages: with thousands of keys, under
        # load, it took longer than nats-py's default 5 s; a scan may take up to a lease.
        self._scan_js = nc.jetstream(timeout=max(5.0, lease))  # pyright: ignore[reportUnknownMemberType]
        self.logs = LogLimit(_logger)
        """The type's log lines, within one limit for all its keys."""

    @staticmethod
    async def set_up(
        js: JetStreamContext, dead: DeadLetterStreams, *, prefix: str, entity_type: str, settings: Durable
    ) -> None:
        """Make (or keep, or update: `made_or_kept`) the type's mailbox stream and its dead-letter
        stream. Raises ``RuntimeError`` without JetStream, ``ValueError`` if the type has a
        different number of shards already (every host of a type uses the same), or if its
        stream has other settings that could not be updated."""
        name = mailbox_stream(prefix, entity_type)
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            pass
        except NO_JETSTREAM:
            raise jetstream_missing("a durable entity type") from None
        else:
            shards = _shards_in(info.config.metadata)
            if shards is not None and shards != settings.shards:
                raise ValueError(
                    f"the durable entity type {entity_type!r} has {shards} shards: "
                    f"host it with Durable(shards={shards})"
                )
        config = StreamConfig(
            name=name,
            subjects=[f"{prefix}.mailbox.{entity_type}.>"],  # forged subjects too: see scan()
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=settings.dedupe_window,
            max_consumers=_MAX_CONSUMERS,
            metadata={SHARDS: str(settings.shards)},
        )
        await made_or_kept(js, config, "a durable entity type", provision="Node.provision_entities")
        await dead.set_up(
            dead_letter_name(entity_type),
            name,
            limit=settings.dead_letter_limit,
            dedupe_window=settings.dedupe_window,
        )

    @staticmethod
    async def exists(js: JetStreamContext, *, prefix: str, entity_type: str) -> bool:
        """Whether the type has a mailbox stream (it was hosted durably); False without JetStream
        (its bucket's set-up then says so)."""
        try:
            await js.stream_info(mailbox_stream(prefix, entity_type))
        except (nats.js.errors.NotFoundError, *NO_JETSTREAM):
            return False
        return True

    def open(self) -> None:
        """Start scanning the stream, now and every half lease."""
        self._scanner = self.spawn(self._scan_forever())

    async def close(self) -> None:
        """Stop scanning (the pumps were stopped by the activations' passivation)."""
        for task in (self._scanner, self._forging):
            if task is not None:
                task.cancel()
        self.failures.close()

    # -- shards ----------------------------------------------------------------------------------

    def shard_of(self, key: str) -> int:
        """The shard of ``key`` in this type."""
        return shard_of(key, self.shards)

    def subject_of_shard(self, shard: int) -> str:
        """The subjects of ``shard``'s keys: ``<prefix>.mailbox.<type>.<shard>.*``."""
        return f"{self.prefix}.mailbox.{self.entity_type}.{shard}.*"

    def check_shard(self, key: str) -> None:
        """``ValueError`` unless ``key`` (a subject token routed to this host) names a shard: a
        durable type's keys are reached through its mailbox, and its hosts place shards."""
        if not (key.isascii() and key.isdigit() and str(int(key)) == key and int(key) < self.shards):
            raise ValueError(
                f"{key[:40]!r} is not a shard of the durable entity type {self.entity_type}: "
                "tell or ask its keys through node.entity(...), which stores in its mailbox"
            )

    async def start_shard(self, shard: str) -> tuple[Mailbox, PublicationSupervisor | None]:
        """Start the actor of ``shard``'s activation (its keys' entities start in its pump)."""
        spec = ChildSpec(_Shard, stop_timeout=self.host.placements.stop_timeout)
        return await Target.of(entity_name(self.entity_type, shard), spec, None).start()

    def active(self, key: str) -> Actor[Any] | None:
        """The entity of ``key`` if it runs on this node now (its shard's lease valid)."""
        pump = self.pumps.get(str(self.shard_of(key)))
        if pump is None or pump.activation.lease is None or not pump.activation.lease.valid(self.clock()):
            return None
        mailbox = pump.active(key)
        return None if mailbox is None else mailbox.actor

    # -- the activations' hooks ----------------------------------------------------------------

    def started(self, activation: Activation) -> None:
        """A shard's ``activation`` is active: its pump starts."""
        self.failures.open()  # once: a failed handler is noted from the first activation on
        pump = ShardPump(self, activation)
        self.pumps[activation.key] = pump
        pump.start()

    async def stopping(self, activation: Activation, *, release: bool, timeout: float) -> None:
        """A shard's ``activation`` stops: its pump lets each key finish the message it handles
        (within ``timeout``), gives back the others and stops its keys' entities (their
        teardowns run) before the shard's lease is released or can expire."""
        pump = self.pumps.get(activation.key)
        if pump is None or pump.activation is not activation:
            return
        del self.pumps[activation.key]
        await pump.stop(timeout)

    async def woken(self, activation: Activation, msg: Msg) -> None:
        """A message on the shard's core subject, the shard being active: a wake (the pump
        fetches). A request there is answered with an error: a durable type is asked through
        its mailbox."""
        pump = self.pumps.get(activation.key)
        if pump is not None:
            pump.woken()
        identifier = entity_name(self.entity_type, activation.key)
        if msg.reply:
            refusal = ValueError(
                f"{self.entity_type} is a durable entity type: ask it through node.entity(...), "
                "which stores the ask in its mailbox"
            )
            await self.receiver.send_error(identifier, msg.reply, refusal)
        elif msg.data:  # not a wake (those are empty): a tell that was not stored
            refusal = ValueError(
                f"{self.entity_type} is a durable entity type: a tell to its core subject is not "
                "stored or handled; tell it through node.entity(...)"
            )
            dead_letters.record(msg.data, identifier, "invalid", refusal)

    # -- scans ---------------------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except (nats.errors.Error, asyncio.TimeoutError, OSError) as error:
                self.logs.log(logging.WARNING, "%s: the mailbox scan failed: %r", self.entity_type, error)
            await asyncio.sleep(self.scan_every)  # a period, not a wait for state

    async def scan(self) -> int:
        """Read which shards have stored messages, and wake those not active here that had some
        at the last scan too (a wake may be on its way for the others; all of them when the last
        scan found none, as at the first); drop the messages of subjects no shard's consumer
        reads (forged: no shard's number, or more tokens), in a task of their own unless the
        last scan's still runs (``_forged_subjects``). A shard's subject
        whose key is invalid, or of another shard, is the shard's pump's to drop. The number of
        shards woken."""
        base = f"{self.prefix}.mailbox.{self.entity_type}."
        info = await self._scan_js.stream_info(self.stream, subjects_filter=base + ">")
        subjects: dict[str, int] = dict(info.state.subjects or {})
        shards: set[int] = set()
        forged: list[str] = []
        for subject in subjects:
            shard, _, key = subject[len(base) :].partition(".")
            try:
                self.check_shard(shard)
                if "." in key or not key:
                    raise ValueError(key)
            except ValueError:
                forged.append(subject)
            else:
                shards.add(int(shard))
        woken = 0
        order = list(shards)
        random.shuffle(order)  # beyond the limit, other shards at the next scan
        for number in order:
            if woken >= _MAX_WAKES_PER_SCAN:
                break
            if str(number) in self.host.activations:
                continue
            if not self._seen or number in self._seen:
                woken += 1
                self.spawn(self._wake(number))
        self._seen = shards
        forged = forged[: forged_subjects.MAX_PER_SCAN]
        if forged and (self._forging is None or self._forging.done()):
            self._forging = self.spawn(self._drop_forged({subject: subjects[subject] for subject in forged}))
        return woken

    async def _drop_forged(self, counts: dict[str, int]) -> None:
        try:
            await forged_subjects.drop_found(self, counts)
        except (nats.errors.Error, asyncio.TimeoutError, OSError) as error:
            self.logs.log(logging.WARNING, "%s: dropping forged messages failed: %r", self.entity_type, error)

    async def dead_letter_unstarted(
        self, msg: Msg, text: str, cause: BaseException | None, fenced: Callable[[], bool], owner: str
    ) -> bool:
        """Move ``msg``, a message for a key whose entity cannot start (``text`` says why, and
        ``cause`` is the start's error), to the dead-letter stream (error type
        ``EntityNotStarted``) and take it out of the mailbox: a dead letter ``overflow``, its
        error a `DeliveryLimitReached`, and an ask is answered with it. If ``fenced()`` once it
        is stored (the shard's lease is over, or its stop gave up waiting: the next owner may
        handle it), the letter it stored is deleted (``owner``, the activation's claim, keeps
        it apart from any other activation's) and the message left alone: False. False too
        (it is given back, delivered again after `Durable.retry_delay`) if it was not stored."""
        stream, deliveries = dead_letter_stream(self.stream), msg.metadata.num_delivered
        gave_up = DeliveryLimitReached(self.identifier_of(msg), deliveries, stream, "EntityNotStarted", text)
        gave_up.__cause__ = cause
        return await self._dead_letter(msg, "EntityNotStarted", text, "overflow", gave_up, fenced, owner)

    async def _dead_letter(
        self,
        msg: Msg,
        error_type: str,
        text: str,
        reason: Literal["invalid", "overflow"],
        error: BaseException,
        fenced: Callable[[], bool] | None = None,
        owner: str = "",
    ) -> bool:
        deliveries = msg.metadata.num_delivered
        at = await self.dead.move(msg, self.dead_name, deliveries, error_type, text, owner=owner)
        if fenced is not None and fenced():  # settling is the next owner's now: it may handle it
            if at:
                await self.dead.forget(self.stream, at)
            return False
        if not at:
            with contextlib.suppress(nats.errors.Error):  # delivered again, after a while
                await msg.nak(delay=self.settings.retry_delay(deliveries))
            return False
        identifier = self.identifier_of(msg)
        dead_letters.record(msg.data, identifier, reason, error)
        with contextlib.suppress(nats.errors.Error):
            await msg.term()
        reply = (msg.headers or {}).get(REPLY)  # an ask: answered
        await self.receiver.send_error(identifier, reply, error, answered(msg))
        return True

    def identifier_of(self, msg: Msg) -> str:
        """``<type>/<key>`` of a stored message, by its subject's last token (cut to 40)."""
        return entity_name(self.entity_type, msg.subject.rsplit(".", 1)[-1][:40])

    # -- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, limit: int | None = 100) -> list[StoredDeadLetter]:
        """The messages in the type's dead-letter stream, oldest first (see `Node.dead_letters`)."""
        return await self.dead.read(self.dead_name, self.stream, limit)
