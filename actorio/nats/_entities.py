"""Entities: virtual actors by type and key, activated on their first message, one node at a time.

Owns:

- `Entities`: a node's side of entities: routing what its references (`EntityRef`, in
  ``_entity_ref``) are told, in order (a queue per type: ``_entity_queues``; a location cache
  refreshed from the type's bucket, or, for a key nobody holds, a node chosen among the type's
  live hosts by `Entities.placement`); asks
  routed again while their key moves; the types it hosts (`EntityHost`, ``_entity_host``) and its
  announcements (``_placement.Hosts``). What `Node` offers of it is in ``_node_entities``.

See docs/entities.md for the guarantees and their timing assumptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext
from typing_extensions import TypeVar

from .. import Actor, Message, SupervisorStrategy
from ..lowlevel import AskRef, hand_off, inject, report_transport
from ._addresses import Addresses
from ._codec import TIMEOUT, encode_message
from ._durable import Durable
from ._durable_entities import DurableSending
from ._entity_host import ERROR_TYPE, LEASE, MAX_ACTIVE, EntityHost
from ._entity_persistence import DUE_MAX_BYTES, Reminders, persistent_factory
from ._entity_queues import Send, TellQueues
from ._entity_ref import EntityRef
from ._errors import ActorNotFound
from ._placement import (
    BUCKET_MAX_BYTES,
    Host,
    Hosts,
    Placement,
    Placements,
    announcement,
    bucket_name,
    check_entity_type,
    check_key,
    least_loaded,
)
from ._publication import Receiver

if TYPE_CHECKING:
    from actorio.persistence import Journal

    from ._publication import Spawn

__all__ = ["Entities"]

_logger = logging.getLogger("actorio.nats")

Q = TypeVar("Q", bound=Message[Any])

# -- a node's entities -----------------------------------------------------------------------------


class _Route:
    __slots__ = ("node", "claim", "expires", "made")

    def __init__(self, node: str, claim: int, expires: float, made: float) -> None:
        self.node = node
        self.claim = claim
        self.expires = expires
        self.made = made  # when it was read (a route to a node that is not live lasts a second)


# How long a known placement is trusted before it is read again. A stale one costs little (the
# node reached forwards a tell, answers an ask EntityMoved; a silent node's routes are dropped at
# once); reading it costs a bucket read per message once a burst takes longer than this (10 s
# made a 50,000-tell burst to 10,000 keys read the bucket for nearly every message).
_ROUTE_SECONDS = 60.0
_CHOICE_SECONDS = 1.0  # how long a choice for a free key is kept (its claim is on its way)
_MAX_ROUTES = 100000
PROBE_ANSWERS = 8
"""Probes answered at once in a burst (nodes starting together); beyond, four a period."""
_RECENT_SECONDS = 60.0  # hosts heard of this recently are chosen when none announced lately
_EXPIRY_MARGIN = 0.02  # read an entry this long after it should have expired
_EXPIRED_RECHECK = 0.1  # an entry past its TTL that the server has not removed yet: read again then


class _Retry(enum.Enum):
    """Why a request is routed again."""

    AGAIN = "the key's entry changed, or its node said it does not hold the key"
    SILENT = "nobody answered the node's subject"


class Entities:
    """A node's entities: the references it makes, and the types it hosts (see the module).

    ``placement`` chooses the node for a key nobody holds: `least_loaded` by default (the live
    host with the fewest activations of the type, counting those this node sent it since its
    last announcement), or ``rendezvous``, or any ``(key, hosts) -> host``.
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        prefix: str,
        node_id: str,
        receiver: Receiver,
        addresses: Addresses,
        spawn: Spawn,
        ask_timeout: float,
        announce_every: float = 1.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self.prefix = prefix
        self.node_id = node_id
        self._receiver = receiver
        self._addresses = addresses
        self._spawn = spawn
        self._ask_timeout = ask_timeout
        self.announce_every = announce_every
        self._answers = float(PROBE_ANSWERS)  # probe answers it may send now (see _on_probe)
        self._answered = 0.0  # when that was counted (the loop's clock)
        self._probe_answer: asyncio.Task[None] | None = None  # an answer to probes, coming
        self.placement: Placement = least_loaded
        self.bucket_max_bytes: int | None = BUCKET_MAX_BYTES
        """The size bound of a type's placement bucket when this node creates it (None: none)."""
        self.due_max_bytes: int | None = DUE_MAX_BYTES
        """The size bound of a persistent type's index of due reminders when this node creates
        it (None: none)."""
        self._clock = asyncio.get_running_loop().time
        self.hosts = Hosts(nc, prefix=prefix, clock=self._clock)
        self.hosted: dict[str, EntityHost] = {}
        self._lookups: dict[str, Placements] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._resolving: dict[tuple[str, str], asyncio.Future[_Route]] = {}
        self._queues = TellQueues(spawn, node_id)
        self._announcer: asyncio.Task[None] | None = None
        self._probes: Subscription | None = None
        self.mailboxes: DurableSending | None = None
        """Sending to durable types (``_durable_entities``), set by the node."""
        self._opened = False
        self._closed = False

    async def open(self) -> None:
        """Subscribe to host announcements (once)."""
        if not self._opened:
            self._opened = True
            await self.hosts.open()

    def subject(self, entity_type: str, node: str, key: str) -> str:
        """The subject of ``key`` of ``entity_type`` at ``node``: ``<prefix>.entity.<type>.<node>.<key>``."""
        return f"{self.prefix}.entity.{entity_type}.{node}.{key}"

    # -- references ----------------------------------------------------------------------------

    def ref(self, entity_type: str, key: str, protocol: tuple[type, ...] | None) -> EntityRef[Any]:
        """A reference to ``key`` of ``entity_type`` (see `Node.entity`); both are checked."""
        check_entity_type(entity_type)
        check_key(key)
        if self._closed:
            raise RuntimeError("the node is closed")
        return EntityRef(self, entity_type, key, protocol)

    async def _placements(self, entity_type: str, timeout: float) -> Placements:
        """The type's bucket, for reading placements; waits (up to ``timeout``) for a host of the
        type if the bucket does not exist yet; `ActorNotFound` if none comes."""
        found = self._lookups.get(entity_type)
        if found is not None:
            return found
        hosted = self.hosted.get(entity_type)
        if hosted is not None:
            return hosted.placements
        await self.open()
        name = bucket_name(self.prefix, entity_type)
        try:
            kv = await Placements.bucket(self._js, name, None)
        except LookupError:
            if not await self.wait_for_hosts(entity_type, timeout):
                subject = self.subject(entity_type, "*", "*")
                raise ActorNotFound(entity_type, subject, entity_type=entity_type) from None
            kv = await Placements.bucket(self._js, name, None)
        ttl = (await kv.status()).ttl or 0.0
        placements = Placements(
            kv, js=self._js, bucket=name, ttl=ttl, guard=0.0, node_id=self.node_id, clock=self._clock
        )
        self._lookups[entity_type] = placements
        return placements

    async def route(self, ref: EntityRef[Any], timeout: float) -> _Route:
        """Where a message to ``ref`` goes now: the cached placement (if fresh: read within a
        minute, or within a second if its node is not live, as when it announced that it left
        or went silent, or has not hosted the type without a break since the read), else one
        read from the bucket (one read per key at a time: the callers waiting for it resume in
        the order they asked). Forged announcements cost a sender at most a read per key per
        second, however many are sent."""
        index = (ref.entity_type, ref.key)
        route = self._routes.get(index)
        if route is not None:
            now = self._clock()
            if route.expires > now and (
                now - route.made < _CHOICE_SECONDS
                or self.hosts.is_live(ref.entity_type, route.node, route.made)
            ):
                return route
        resolving = self._resolving.get(index)
        if resolving is None:
            resolving = asyncio.ensure_future(self._resolve(ref, timeout))
            self._resolving[index] = resolving
            resolving.add_done_callback(functools.partial(self._resolved, index))
        # Shared by every caller for this key, each waiting within its own timeout.
        return await asyncio.wait_for(asyncio.shield(resolving), timeout)

    def _resolved(self, index: tuple[str, str], future: asyncio.Future[_Route]) -> None:
        self._resolving.pop(index, None)
        if not future.cancelled():
            future.exception()  # retrieved: its callers, if any are left, raise it

    async def wait_for_hosts(self, entity_type: str, timeout: float) -> list[Host]:
        """The live hosts of ``entity_type``, waiting up to ``timeout`` seconds for one to
        announce itself (an empty list if none did)."""
        await self.open()
        return await self.hosts.wait_for(entity_type, timeout)

    async def _resolve(self, ref: EntityRef[Any], timeout: float) -> _Route:
        entity_type, key = ref.entity_type, ref.key
        placements = await self._placements(entity_type, timeout)
        owner = await placements.lookup(key)
        now = self._clock()
        if owner is not None:
            route = _Route(owner.node, owner.claim, now + _ROUTE_SECONDS, now)
        else:
            hosts = self.hosts.live(entity_type)
            if not hosts:
                # None announced itself lately. Hosts heard of in the last minute may only be
                # late (busy): wait a little for one, then choose among those rather than stall.
                recent = self.hosts.recent(entity_type, _RECENT_SECONDS)
                hosts = await self.wait_for_hosts(entity_type, min(timeout, 1.0) if recent else timeout)
                hosts = hosts or recent
            if not hosts:
                subject = self.subject(entity_type, "*", key)
                raise ActorNotFound(ref.identifier, subject, entity_type=entity_type)
            host = self.placement(key, hosts)
            host.load += 1
            route = _Route(host.node, 0, now + _CHOICE_SECONDS, now)
        if len(self._routes) >= _MAX_ROUTES:
            for stale in list(self._routes)[: _MAX_ROUTES // 2]:  # the oldest half
                del self._routes[stale]
        self._routes[(entity_type, key)] = route
        return route

    def forget(self, ref: EntityRef[Any], route: _Route) -> None:
        """Drop ``route`` from the cache (its node did not hold the key, or did not answer)."""
        index = (ref.entity_type, ref.key)
        if self._routes.get(index) is route:
            del self._routes[index]

    # -- sending -------------------------------------------------------------------------------

    async def publish(self, ref: EntityRef[Any], body: bytes, headers: dict[str, str] | None) -> None:
        """Send a tell's body to where ``ref`` is, after what ``tell_nowait`` queued for its type."""
        await self._queues.send(ref.entity_type, self._publishing(ref, body, headers))

    async def tell_payload(self, ref: EntityRef[Any], body: bytes) -> None:
        """Send a raw payload's body to ``ref`` as `publish` does, with the sending code's trace
        context."""
        headers: dict[str, str] = {}
        inject(headers)
        report_transport("nats", "sent", "tell")
        await self.publish(ref, body, headers or None)

    def _publishing(self, ref: EntityRef[Any], body: bytes, headers: dict[str, str] | None) -> Send:
        async def send() -> None:
            mailboxes = self.mailboxes
            if mailboxes is not None and await mailboxes.durable(ref.entity_type, self._ask_timeout):
                await mailboxes.tell(ref, body, headers)
                return
            route = await self.route(ref, self._ask_timeout)
            sent = dict(headers or {})
            sent[LEASE] = str(route.claim)
            await self._nc.publish(self.subject(ref.entity_type, route.node, ref.key), body, headers=sent)

        return send

    async def tell(self, ref: EntityRef[Any], message: Message[Any]) -> None:
        """Send ``message`` to where ``ref`` is, after what ``tell_nowait`` queued for its type."""
        send = self._sending(ref, message)
        if send is not None:
            await self._queues.send(ref.entity_type, send)

    def tell_nowait(self, ref: EntityRef[Any], message: Message[Any]) -> None:
        """Queue ``message`` for ``ref`` (encoded now) behind what is queued for its type (a queue
        per type: see ``_entity_queues``); a failure to send it is logged."""
        send = self._sending(ref, message)
        if send is not None:
            self._queues.tell_nowait(ref.entity_type, send)

    def _sending(self, ref: EntityRef[Any], message: Message[Any]) -> Send | None:
        ask = hand_off(message)
        if ask is not None:  # a message carrying an ask, handed on: the entity answers it
            self._spawn(self._answer_forwarded(ref, message, ask))
            return None
        body = encode_message(message)
        headers = self._addresses.headers(message) or {}
        inject(headers)  # the sending code's trace context, if a tracer propagates one
        report_transport("nats", "sent", "tell")
        return self._publishing(ref, body, headers or None)

    async def _answer_forwarded(self, ref: EntityRef[Any], message: Message[Any], ask: AskRef) -> None:
        try:
            ask.tell_nowait(await ref.ask(message))
        except Exception as error:
            ask.fail(error)

    async def request(self, ref: EntityRef[Any], body: bytes, timeout: float | None) -> Msg:
        """Ask ``ref`` with ``body``: the reply message. Routed again, within ``timeout``, while
        the node reached does not hold the key (`EntityMoved`), nobody answers its subject, or
        the key's placement changes while the reply is awaited (see `_still_placed`)."""
        wait = self._ask_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        late = f"no reply from {ref.identifier} within {wait} s"
        pause = 0.05
        moved = False
        if ref.entity_type in self._queues:  # after what tell_nowait queued, within its own timeout
            try:
                await asyncio.wait_for(self._queues.send(ref.entity_type, _nothing), wait)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(
                    f"{late} (earlier tell_nowait calls were still being sent)"
                ) from None
        mailboxes = self.mailboxes
        if mailboxes is not None and await mailboxes.durable(
            ref.entity_type, max(deadline - loop.time(), 0.001)
        ):
            return await mailboxes.request(ref, body, max(deadline - loop.time(), 0.001))
        report_transport("nats", "sent", "ask")  # (a durable type's request reports its own)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError(late)
            try:
                route = await self.route(ref, remaining)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(f"{late} (its placement was not found)") from None
            reply = await self._attempt(ref, route, body, deadline)
            if isinstance(reply, Msg) and not _moved(reply):
                return reply
            self.forget(ref, route)
            again = pause
            if isinstance(reply, Msg) and not moved:
                # The first `EntityMoved`: most often a route cached from before the key moved or
                # was activated again (then refused: see `EntityHost._deliver`). Routed again now.
                moved, again = True, 0.0
            elif reply is _Retry.SILENT and route.claim:
                # Its node is gone, its lease not yet expired: nobody can hold the key before
                # the entry expires, so wait for that (one read) rather than reading it again
                # and again (thousands of keys of a dead node would each poll the bucket).
                again = await self._until_expiry(ref, route, pause)
            await asyncio.sleep(min(again, max(deadline - loop.time(), 0)))
            pause = min(pause * 2, 0.5)

    async def _until_expiry(self, ref: EntityRef[Any], route: _Route, pause: float) -> float:
        """How long to wait before routing ``ref`` again after ``route``'s node did not answer:
        until its entry expires (at least ``pause``), 0 if the entry changed already."""
        placements = await self._placements(ref.entity_type, pause)
        try:
            left = await placements.remaining(ref.key, route.claim)
        except (nats.errors.Error, asyncio.TimeoutError):
            return pause
        return 0.0 if left is None else max(left + _EXPIRY_MARGIN, pause)

    async def _attempt(
        self, ref: EntityRef[Any], route: _Route, body: bytes, deadline: float
    ) -> Msg | _Retry:
        """One request along ``route``: its reply, or why to route it again. While the reply is
        awaited, the key's entry is read every quarter of the lease, or when it expires if that
        is sooner: a request sent as its node died (the server had not yet seen the connection
        close) is otherwise lost without a word, and would wait out the whole timeout."""
        loop = asyncio.get_running_loop()
        remaining = max(deadline - loop.time(), 0.001)
        headers = {TIMEOUT: repr(remaining), LEASE: str(route.claim)}
        inject(headers)  # the asking code's trace context, if a tracer propagates one
        subject = self.subject(ref.entity_type, route.node, ref.key)
        placements = await self._placements(ref.entity_type, remaining)
        every = max(placements.ttl / 4, 0.05) if placements.ttl else remaining
        check = every
        request = asyncio.ensure_future(self._nc.request(subject, body, timeout=remaining, headers=headers))
        absent_since: float | None = None
        try:
            while True:
                await asyncio.wait([request], timeout=min(check, max(deadline - loop.time(), 0.001)))
                if request.done():
                    break
                if loop.time() >= deadline:
                    raise asyncio.TimeoutError(f"no reply from {ref.identifier} by the deadline")
                placed, absent_since, check = await self._still_placed(
                    placements, ref.key, route, absent_since, every
                )
                if not placed:
                    return _Retry.AGAIN
        finally:
            if not request.done():
                request.cancel()
        try:
            return request.result()
        except nats.errors.NoRespondersError:
            self.hosts.forget(ref.entity_type, route.node)
            return _Retry.SILENT
        except nats.errors.TimeoutError:
            raise asyncio.TimeoutError(f"no reply from {ref.identifier} by the deadline") from None

    async def _still_placed(
        self, placements: Placements, key: str, route: _Route, absent_since: float | None, every: float
    ) -> tuple[bool, float | None, float]:
        """Whether a reply can still come along ``route``, and when to look again: the key's
        entry still names the lease the request was routed with (for a key found free, the node
        chosen, or nobody yet for less than two reads). Once the entry changed, the activation
        asked has stopped (see docs/entities.md), so sending again cannot make it handled twice.
        A routed lease is looked at again when its entry expires, if that is before ``every``."""
        try:
            if route.claim:
                left = await placements.remaining(key, route.claim)
                if left is None:
                    return False, absent_since, every
                return True, absent_since, min(every, max(left, _EXPIRED_RECHECK) + _EXPIRY_MARGIN)
            owner = await placements.lookup(key)
        except (nats.errors.Error, asyncio.TimeoutError):
            return True, absent_since, every  # cannot tell: keep waiting
        if owner is not None:
            return owner.node == route.node, None, every
        now = self._clock()
        if absent_since is None:
            return True, now, every
        return now - absent_since < 2 * every, absent_since, every

    # -- hosting -------------------------------------------------------------------------------

    def _check_settings(self, lease: float, idle_timeout: float = 1.0, max_active: int | None = None) -> None:
        """``ValueError`` unless ``lease`` and ``idle_timeout`` are positive, finite numbers of
        seconds, and ``max_active`` and the node's bucket sizes positive ints or None."""
        if not (0 < lease < math.inf and 0 < idle_timeout < math.inf):
            raise ValueError("lease and idle_timeout are positive, finite numbers of seconds")
        for setting, value in (
            ("max_active", max_active),
            ("entities.bucket_max_bytes", self.bucket_max_bytes),
            ("entities.due_max_bytes", self.due_max_bytes),
        ):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{setting} is a positive int or None, not {value!r}")

    async def provision(
        self, entity_type: str, *, lease: float, durable: Durable | None, persistent: bool
    ) -> None:
        """Make ``entity_type``'s streams and buckets without hosting it (see
        `Node.provision_entities`): a durable type's mailbox and dead-letter streams, its
        placement bucket (with the TTL ``lease``), and, ``persistent``, its reminders' index."""
        check_entity_type(entity_type)
        self._check_settings(lease)
        if self.mailboxes is not None:  # as a host does: the streams come before the bucket
            await self.mailboxes.prepare(entity_type, durable)
        name = bucket_name(self.prefix, entity_type)
        await Placements.bucket(self._js, name, lease, self.bucket_max_bytes)
        if persistent:
            await Reminders.index(self._js, name + "_due", self.due_max_bytes)

    async def host(
        self,
        entity_type: str,
        factory: Callable[[str], Actor[Any]],
        *,
        idle_timeout: float,
        lease: float,
        guard: float | None,
        supervision: SupervisorStrategy | None,
        journal: Journal | None = None,
        made_on_journal: bool = False,
        durable: Durable | None = None,
        max_active: int | None = MAX_ACTIVE,
    ) -> EntityHost:
        """Host ``entity_type`` (see `Node.host`). With a ``journal``, the type is persistent
        (see ``_entity_persistence``); ``made_on_journal``: ``factory`` is a persistent actor
        class, made as ``factory(key, journal, clock=...)``."""
        check_entity_type(entity_type)
        if entity_type in self.hosted:
            raise ValueError(f"this node hosts the entity type {entity_type!r} already")
        self._check_settings(lease, idle_timeout, max_active)
        guard = lease / 4 if guard is None else guard
        if not 0 < guard < lease / 2:
            raise ValueError(f"guard is between 0 and half the lease ({lease / 2} s), not {guard!r}")
        await self.open()
        if self.mailboxes is not None:  # a durable type's streams come before its bucket
            await self.mailboxes.prepare(entity_type, durable)
        name = bucket_name(self.prefix, entity_type)
        kv = await Placements.bucket(self._js, name, lease, self.bucket_max_bytes)
        placements = Placements(
            kv, js=self._js, bucket=name, ttl=lease, guard=guard, node_id=self.node_id, clock=self._clock
        )
        reminders: Reminders | None = None
        made: list[EntityHost] = []
        if journal is not None:
            reminders = Reminders(self, entity_type, self._js, name + "_due", max_bytes=self.due_max_bytes)
            factory = persistent_factory(
                factory, journal if made_on_journal else None, made, reminders, self._clock
            )
        host = EntityHost(
            self,
            entity_type,
            factory,
            placements,
            idle_timeout=idle_timeout,
            supervision=supervision,
            receiver=self._receiver,
            spawn=self._spawn,
            max_active=max_active,
        )
        made.append(host)
        host.reminders = reminders
        if durable is not None and self.mailboxes is not None:
            host.durable = self.mailboxes.mailbox(host, durable, lease)
        if reminders is not None:
            await reminders.open()  # before the first activation: its reminders are indexed
        try:
            await host.open()
        except BaseException:
            if reminders is not None:
                await reminders.close()
            raise
        self.hosted[entity_type] = host
        if self._probes is None:
            # nats-py leaves a parameter of subscribe() unannotated.
            self._probes = await self._nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
                self.hosts.probe_subject, cb=self._on_probe
            )
            self._announcer = self._spawn(self._announce_forever())
        await self.announce()
        if host.durable is not None:
            host.durable.open()  # scans for keys with stored messages, now and every half lease
        return host

    async def announce(self) -> None:
        """Tell every node which types this one hosts, and how many activations each has."""
        loads = {name: len(host.activations) for name, host in self.hosted.items() if host.serving}
        with contextlib.suppress(nats.errors.Error):
            await self._nc.publish(self.hosts.subject, announcement(self.node_id, self.announce_every, loads))

    async def _on_probe(self, msg: Msg) -> None:
        """Answer a probe with an announcement. Anyone may probe: answers are rationed (a burst
        of `PROBE_ANSWERS` at once, then four a period), and the probes beyond share one answer,
        sent when the ration allows."""
        if self._probe_answer is not None and not self._probe_answer.done():
            return  # an answer is coming
        now = asyncio.get_running_loop().time()
        rate = 4 / self.announce_every
        self._answers = min(PROBE_ANSWERS, self._answers + (now - self._answered) * rate)
        self._answered = now
        if self._answers >= 1:
            self._answers -= 1
            await self.announce()
        else:
            self._probe_answer = self._spawn(self._announce_after((1 - self._answers) / rate))

    async def _announce_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self._closed:  # (a node that closed meanwhile announced that it left)
            await self.announce()
            self._answers, self._answered = 0.0, asyncio.get_running_loop().time()

    async def _announce_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.announce_every)
            await self.announce()

    async def close(self, timeout: float) -> None:
        """Stop hosting: leave (an empty announcement), stop receiving, passivate every
        activation (its teardown runs, its placement is released). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._announcer is not None:
            self._announcer.cancel()
        hosted = list(self.hosted.values())
        for host in hosted:
            host.serving = False
        if hosted:
            await self.announce()
        for host in hosted:
            await host.close(timeout)
        if self._probes is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._probes.unsubscribe()
        await self.hosts.close()


def _moved(reply: Msg) -> bool:
    headers = reply.headers or {}
    return headers.get(ERROR_TYPE) == "EntityMoved"


async def _nothing() -> None:
    return None
