"""Durable entity types: a JetStream mailbox per type, a subject per key, a consumer per active key.

Owns:

- the names: the type's mailbox stream (`mailbox_stream`, work-queue retention) capturing
  ``<prefix>.mailbox.<type>.<key>`` (`mailbox_subject`), and its dead-letter stream (name
  ``entities.<type>``: subject ``<prefix>.dlq.entities.<type>``);
- `DurableSending`: a node's sending side. A tell (or an ask, with its reply address) to a key
  of a durable type is stored in the stream first (``tell`` returns once JetStream acknowledged
  it), then the key is *woken*: an empty message routed as a plain one (``_entities``), which
  activates the key where the placement says; which types are durable, read from the server
  (a type is durable when its mailbox stream exists);
- `DurableMailbox`: one hosted durable type. Each activation gets a `KeyPump`: it creates (or
  binds) the key's durable pull consumer (filtered on the key's subject, one message
  outstanding at a time), fetches while the activation holds its lease, and has each message
  settled by the durable rules (``_settlement``); a wake just activates. The host scans the
  stream for keys with stored messages when it starts and every half lease, and wakes those
  nobody woke (a lost wake is recovered). A subject whose key is invalid (forged) has its messages
  moved to the dead-letter stream.

See docs/entities.md, "Durable entity types", for the guarantee and why it is shaped this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from .. import dead_letters
from ..lowlevel import LogLimit, inject, report_transport
from ._codec import ERROR, REPLY, TIMEOUT, encode_error
from ._dead_letter_stream import DeadLetterStreams, StoredDeadLetter
from ._durable import Durable, Streams
from ._entity_host import LEASE
from ._placement import check_key
from ._settlement import Failures, Settlement, give_back, report_progress

if TYPE_CHECKING:
    from ._entities import Entities
    from ._entity_host import Activation, EntityHost
    from ._entity_ref import EntityRef
    from ._publication import Receiver, Spawn

__all__ = [
    "MAX_ACTIVE_KEYS",
    "WAKE",
    "DurableMailbox",
    "DurableSending",
    "KeyPump",
    "dead_letter_name",
    "mailbox_stream",
    "mailbox_subject",
]

_logger = logging.getLogger("actorio.nats")

WAKE = "Actorio-Wake"
"""Set on the empty message that wakes a durable entity's key after a store."""

MAX_ACTIVE_KEYS = 100_000
"""The most keys of one durable type with a consumer at once (active, or left by a host that
died): the stream's ``max_consumers``. Beyond it, an activation waits for a consumer (its fetch
fails, logged) until others passivate. nats-server 2.15 limits a stream to 1,000 consumers
unless the stream sets a limit of its own."""

_NOT_DURABLE_SECONDS = 5.0  # how long "this type has no mailbox stream" is believed
_MAX_WAKES_PER_SCAN = 1000  # keys woken by one scan of the stream (the next scan wakes the rest)
_MAX_FORGED_PER_SCAN = 100  # messages of forged subjects moved to dead letters by one scan


def mailbox_stream(prefix: str, entity_type: str) -> str:
    """The mailbox stream of a durable entity type: readable, and distinct for distinct pairs."""
    digest = hashlib.sha1(f"{prefix}.{entity_type}".encode()).hexdigest()[:8]
    return f"ENTITIES_{prefix.replace('.', '_')}_{entity_type}_{digest}".upper()


def mailbox_subject(prefix: str, entity_type: str, key: str) -> str:
    """The subject of ``key``'s messages in its type's mailbox stream (``key`` ``*``: all)."""
    return f"{prefix}.mailbox.{entity_type}.{key}"


def dead_letter_name(entity_type: str) -> str:
    """The name of a durable entity type's dead-letter stream (``<prefix>.dlq.entities.<type>``)."""
    return f"entities.{entity_type}"


def _consumer_name(key: str) -> str:
    """A key's consumer: ``k-<key>`` (a key's characters are valid in a consumer name; the
    prefix keeps it apart from the consumers of forged subjects, ``forged-<digest>``)."""
    return f"k-{key}"


# -- sending -----------------------------------------------------------------------------------


class DurableSending:
    """A node's side of sending to durable entity types (see the module)."""

    def __init__(
        self,
        entities: Entities,
        *,
        streams: Streams,
        replies: dict[str, asyncio.Future[Msg]],
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
        self._waking: dict[tuple[str, str], bool] = {}  # keys being woken -> woken again after?
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
            await self._js.stream_info(mailbox_stream(entities.prefix, entity_type))
        except nats.js.errors.NotFoundError:
            self._durable[entity_type] = clock() + _NOT_DURABLE_SECONDS
            return False
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
            self._durable[entity_type] = float("inf")
        elif await DurableMailbox.exists(self._js, prefix=prefix, entity_type=entity_type):
            raise ValueError(f"the entity type {entity_type!r} is hosted durably: host it with durable=")

    def mailbox(self, host: EntityHost, settings: Durable, lease: float) -> DurableMailbox:
        """The mailbox of ``host``'s durable type (opened once the host announces itself)."""
        entities = self._entities
        entity_type = host.entity_type

        async def wake(key: str) -> None:
            try:
                ref = entities.ref(entity_type, key, None)
            except RuntimeError:  # the node is closing: its scan's wakes are moot
                return
            await self.wake(ref)

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

    async def tell(self, ref: EntityRef[Any], body: bytes, headers: dict[str, str] | None) -> None:
        """Store a tell in the key's mailbox (returns once JetStream acknowledged it), then wake
        the key."""
        prefix = self._entities.prefix
        subject = mailbox_subject(prefix, ref.entity_type, ref.key)
        await self.streams.store_at(subject, ref.identifier, body, headers, None)
        self.wake_soon(ref)

    async def request(self, ref: EntityRef[Any], body: bytes, timeout: float) -> Msg:
        """Store an ask, with this node's reply address, then wake the key; the reply (sent once,
        by the activation that handled it: see docs/entities.md)."""
        prefix = self._entities.prefix
        token = uuid.uuid4().hex
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._replies[token] = future
        headers = {TIMEOUT: repr(timeout), REPLY: f"{prefix}.reply.{self._node_id}.{token}"}
        inject(headers)
        report_transport("nats", "sent", "ask")

        async def store_then_wait() -> Msg:
            subject = mailbox_subject(prefix, ref.entity_type, ref.key)
            await self.streams.store_at(subject, ref.identifier, body, headers, None)
            self.wake_soon(ref)
            return await future

        try:
            return await asyncio.wait_for(store_then_wait(), timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {timeout} s") from None
        finally:
            self._replies.pop(token, None)

    def wake_soon(self, ref: EntityRef[Any]) -> None:
        """Wake ``ref``'s key in the background: a store's acknowledgement does not wait for the
        key's route (which waits for a live host). One wake per key at a time; a key stored to
        again meanwhile is woken once more after it."""
        index = (ref.entity_type, ref.key)
        if index in self._waking:
            self._waking[index] = True
            return
        self._waking[index] = False
        self._entities._spawn(self._wake_while_stored(ref, index))  # pyright: ignore[reportPrivateUsage]

    async def _wake_while_stored(self, ref: EntityRef[Any], index: tuple[str, str]) -> None:
        try:
            while True:
                await self.wake(ref)
                if not self._waking.get(index):
                    return
                self._waking[index] = False
        finally:
            self._waking.pop(index, None)

    async def wake(self, ref: EntityRef[Any]) -> None:
        """Wake ``ref``'s key: an empty message routed as a plain tell (so the key is activated
        where the placement says). Its failure is logged: the message is stored, and a host's
        scan of the stream wakes the key later."""
        entities = self._entities
        try:
            route = await entities.route(ref, self._ask_timeout)
            subject = entities.subject(ref.entity_type, route.node, ref.key)
            await self._nc.publish(subject, b"", headers={LEASE: str(route.claim), WAKE: "1"})
        except Exception as error:
            self._wakes.log(logging.INFO, "%s: not woken (%r); a host's scan will", ref.identifier, error)


# -- hosting -----------------------------------------------------------------------------------


class DurableMailbox:
    """One durable entity type on one host: its streams, its keys' pumps and its scans."""

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
        wake: Callable[[str], Awaitable[None]],
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
        self.stream = mailbox_stream(prefix, host.entity_type)
        self.dead_name = dead_letter_name(host.entity_type)
        self.failures = Failures()
        self.pumps: dict[str, KeyPump] = {}
        self._scanner: asyncio.Task[None] | None = None
        self.scan_every = max(lease / 2, 0.5)
        """Seconds between scans: a lost wake is recovered within two of them, once the key
        is free (its old owner's lease expired)."""
        self._seen: set[str] = set()
        # The scan's answer lists every key with stored messages: with thousands of keys, under
        # load, it took longer than nats-py's default 5 s; a scan may take up to a lease.
        self._scan_js = nc.jetstream(timeout=max(5.0, lease))  # pyright: ignore[reportUnknownMemberType]
        self.logs = LogLimit(_logger)
        """The type's log lines, within one limit for all its keys."""

    @staticmethod
    async def set_up(
        js: JetStreamContext, dead: DeadLetterStreams, *, prefix: str, entity_type: str, settings: Durable
    ) -> None:
        """Create (or update) the type's mailbox stream and its dead-letter stream. Raises
        ``RuntimeError`` without JetStream."""
        config = StreamConfig(
            name=mailbox_stream(prefix, entity_type),
            subjects=[mailbox_subject(prefix, entity_type, "*")],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=settings.dedupe_window,
            max_consumers=MAX_ACTIVE_KEYS,
        )
        # nats-py leaves ``**params`` unannotated in add_stream and update_stream.
        try:
            await js.add_stream(config)  # pyright: ignore[reportUnknownMemberType]
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # pyright: ignore[reportUnknownMemberType]
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            raise RuntimeError("a durable entity type needs JetStream (start nats-server with -js)") from None
        await dead.set_up(
            dead_letter_name(entity_type),
            config.name or "",
            limit=settings.dead_letter_limit,
            dedupe_window=settings.dedupe_window,
        )

    @staticmethod
    async def exists(js: JetStreamContext, *, prefix: str, entity_type: str) -> bool:
        """Whether the type has a mailbox stream (it was hosted durably); False without JetStream
        (its bucket's set-up then says so)."""
        try:
            await js.stream_info(mailbox_stream(prefix, entity_type))
        except (
            nats.js.errors.NotFoundError,
            nats.errors.NoRespondersError,
            nats.js.errors.ServiceUnavailableError,
        ):
            return False
        return True

    def open(self) -> None:
        """Start scanning the stream, now and every half lease."""
        self._scanner = self.spawn(self._scan_forever())

    async def close(self) -> None:
        """Stop scanning (the pumps were stopped by the activations' passivation)."""
        if self._scanner is not None:
            self._scanner.cancel()
        self.failures.close()

    # -- the activations' hooks ----------------------------------------------------------------

    def started(self, activation: Activation) -> None:
        """``activation`` is active: its key's pump starts."""
        self.failures.open()  # once: a failed handler is noted from the first activation on
        pump = KeyPump(self, activation)
        self.pumps[activation.key] = pump
        pump.start()

    async def stopping(self, activation: Activation, *, release: bool, timeout: float) -> None:
        """``activation`` stops: its pump finishes and settles the message being handled (within
        ``timeout``), gives back the others and stops; released (the lease still held), the
        key's consumer is deleted if no message of it is pending (nothing waits for an
        ``ack_wait``, and a message being retried keeps its delivery count)."""
        pump = self.pumps.get(activation.key)
        if pump is None or pump.activation is not activation:
            return
        del self.pumps[activation.key]
        await pump.stop(timeout, delete=release)

    async def woken(self, msg: Msg) -> None:
        """A message on the key's core subject, the key being active: a wake, nothing to do (the
        pump fetches). A request there is answered with an error: a durable type is asked
        through its mailbox."""
        if msg.reply:
            refusal = ValueError(
                f"{self.entity_type} is a durable entity type: ask it through node.entity(...), "
                "which stores the ask in its mailbox"
            )
            identifier = f"{self.entity_type}/{msg.subject.rsplit('.', 1)[-1]}"
            if self.receiver.destinations.refusal(msg.reply) is None:
                await self.receiver.send(identifier, msg.reply, encode_error(refusal, identifier), ERROR)

    # -- scans ---------------------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except (nats.errors.Error, asyncio.TimeoutError, OSError) as error:
                self.logs.log(logging.WARNING, "%s: the mailbox scan failed: %r", self.entity_type, error)
            await asyncio.sleep(self.scan_every)  # a period, not a wait for state

    async def scan(self) -> int:
        """Read which keys have stored messages, and wake those not active here that had some at
        the last scan too (a wake may be on its way for the others; all of them when the last
        scan found none, as at the first); move forged subjects' messages to the dead-letter
        stream. The number of keys woken."""
        info = await self._scan_js.stream_info(
            self.stream, subjects_filter=mailbox_subject(self.prefix, self.entity_type, "*")
        )
        subjects: dict[str, int] = dict(info.state.subjects or {})
        keys: set[str] = set()
        forged: list[str] = []
        for subject in subjects:
            key = subject.rsplit(".", 1)[-1]
            try:
                keys.add(check_key(key))
            except ValueError:
                forged.append(subject)
        woken = 0
        order = list(keys)
        random.shuffle(order)  # beyond the limit, other keys at the next scan
        for key in order:
            if woken >= _MAX_WAKES_PER_SCAN:
                break
            if key in self.host.activations:
                continue
            if not self._seen or key in self._seen:
                woken += 1
                self.spawn(self._wake(key))
        self._seen = keys
        for subject in forged[:_MAX_FORGED_PER_SCAN]:
            await self._forged(subject)
        return woken

    async def _forged(self, subject: str) -> None:
        """Move the messages of a subject whose key is invalid (written by someone other than
        actorio) to the dead-letter stream, through a consumer of their own (then deleted)."""
        digest = hashlib.sha1(subject.encode()).hexdigest()[:16]
        name = f"forged-{digest}"
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.lease,
            max_ack_pending=1,
        )
        # nats-py leaves ``**params`` unannotated in add_consumer.
        await self.js.add_consumer(self.stream, config)  # pyright: ignore[reportUnknownMemberType]
        pull = await self.js.pull_subscribe_bind(durable=name, stream=self.stream)
        identifier = f"{self.entity_type}/{subject.rsplit('.', 1)[-1][:40]}"
        try:
            for _ in range(_MAX_FORGED_PER_SCAN):
                try:
                    msg = (await pull.fetch(1, timeout=1.0))[0]
                except nats.errors.TimeoutError:
                    break
                text = f"the subject {subject[:200]!r} names no valid entity key"
                if await self.dead.move(msg, self.dead_name, msg.metadata.num_delivered, "InvalidKey", text):
                    dead_letters.record(msg.data, identifier, "invalid", ValueError(text))
                    with contextlib.suppress(nats.errors.Error):
                        await msg.term()
                else:
                    await give_back([msg])
                    break
        finally:
            with contextlib.suppress(nats.errors.Error):
                await pull.unsubscribe()
            with contextlib.suppress(nats.errors.Error, nats.js.errors.NotFoundError):
                await self.js.delete_consumer(self.stream, name)

    # -- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, limit: int | None = 100) -> list[StoredDeadLetter]:
        """The messages in the type's dead-letter stream, oldest first (see `Node.dead_letters`)."""
        return await self.dead.read(self.dead_name, self.stream, limit)


class KeyPump:
    """One active key's inlet: its durable pull consumer (see the module), fetched one message at
    a time while its activation holds its lease; each message settled by the durable rules."""

    def __init__(self, mailbox: DurableMailbox, activation: Activation) -> None:
        self._mailbox = mailbox
        self.activation = activation
        self.key = activation.key
        self._stopping = False
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        assert activation.mailbox is not None
        host = mailbox.host
        self._settlement = Settlement(
            mailbox.receiver,
            mailbox.settings,
            mailbox=activation.mailbox,
            name=f"{host.entity_type}/{activation.key}",
            dead=mailbox.dead,
            dead_name=mailbox.dead_name,
            failures=mailbox.failures,
            closing=self.closing,
            logs=mailbox.logs,
        )

    def closing(self) -> bool:
        """True once the activation stops."""
        return self._stopping

    def start(self) -> None:
        self._task = self._mailbox.spawn(self._run())

    async def stop(self, timeout: float, *, delete: bool) -> None:
        """Finish and settle the message being handled (within ``timeout``), stop fetching; with
        ``delete``, delete the key's consumer if no message of it is pending."""
        self._stopping = True
        task = self._task
        if task is not None and not task.done():
            if not self._busy:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
            if not task.done():
                task.cancel()
        mailbox = self._mailbox
        nc = mailbox.nc
        if self._pull is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await asyncio.wait_for(self._pull.unsubscribe(), timeout)
        if delete and not nc.is_closed:
            # Unless a message is still pending (being retried after a failure, or fetched and
            # not given back): its delivery count must survive for the durable rules.
            js, name = mailbox.js, _consumer_name(self.key)
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
                info = await asyncio.wait_for(js.consumer_info(mailbox.stream, name), timeout)
                if not info.num_ack_pending and not info.num_redelivered:
                    await asyncio.wait_for(js.delete_consumer(mailbox.stream, name), timeout)

    def _holding(self) -> bool:
        """The activation may act: not stopping, and its lease valid by this node's clock."""
        lease = self.activation.lease
        clock = self._mailbox.clock
        return not self._stopping and lease is not None and lease.valid(clock())

    async def _bind(self) -> JetStreamContext.PullSubscription:
        """Create the key's consumer if it is missing (one message outstanding at a time, so that
        a message delivered again comes before any later one), and bind to it. The consumer is
        kept in the server's memory: making one for each activated key costs no file; a
        restarted server has lost it, and its next owner (or this pump) makes it again, from the
        first message still stored (the stream, a work queue, keeps only what is unacknowledged;
        delivery counts start again)."""
        mailbox = self._mailbox
        js = mailbox.js
        name = _consumer_name(self.key)
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=mailbox_subject(mailbox.prefix, mailbox.entity_type, self.key),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=mailbox.lease,
            max_ack_pending=1,
            max_deliver=-1,
            inactive_threshold=max(3600.0, 10 * mailbox.lease),
            mem_storage=True,
        )
        # nats-py leaves ``**params`` unannotated in add_consumer.
        await js.add_consumer(mailbox.stream, config)  # pyright: ignore[reportUnknownMemberType]
        return await js.pull_subscribe_bind(durable=name, stream=mailbox.stream)

    async def _run(self) -> None:
        mailbox = self._mailbox
        poll = min(5.0, max(mailbox.lease / 2, 0.5))
        failures = 0
        while self._holding():
            try:
                if self._pull is None:
                    self._pull = await self._bind()
                messages = await self._pull.fetch(1, timeout=poll)
                failures = 0
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
                failures += 1
                _logger.debug("%s/%s: fetch failed (%r)", mailbox.entity_type, self.key, error)
                # The consumer lives in the server's memory: a restarted server lost it. Bind
                # again (making it again) at the next try.
                pull, self._pull = self._pull, None
                if pull is not None:
                    with contextlib.suppress(nats.errors.Error):
                        await pull.unsubscribe()
                if failures == 5:  # not the server restarting: say so, within the type's limit
                    mailbox.logs.log(
                        logging.WARNING,
                        "%s/%s: fetch keeps failing: %r",
                        mailbox.entity_type,
                        self.key,
                        error,
                    )
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))  # the server away: back off
                continue
            msg = messages[0]
            if not self._holding():
                await give_back([msg])
                return
            self._busy = True
            keep_alive = mailbox.spawn(report_progress([msg], mailbox.lease / 2))
            try:
                try:
                    handled = await self._settlement.handle(msg)
                except Exception as error:
                    await self._settlement.node_failed(msg, error)
                    handled = True
            finally:
                keep_alive.cancel()
                self._busy = False
            self.activation.last = mailbox.clock()
            if not handled:
                await give_back([msg])
                assert self.activation.mailbox is not None
                if self.activation.mailbox.closed or self._stopping:
                    return
