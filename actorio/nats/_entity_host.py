"""`EntityHost`: one entity type hosted by one node, and the headers that fence its messages.

Owns the subscription ``<prefix>.entity.<type>.<node id>.*``; the activations (each a `Lease` on its
key and an actor made by the type's factory and supervised as a published factory is, by
``_keeper``); their renewals, idle passivation and fencing; and what happens to a message this
node will not handle (`EntityMoved` to an ask, a tell forwarded where the bucket says).

A message carries the claim revision of the lease it was routed with (``Actorio-Lease``; ``0`` for
a key its sender found free). It is delivered only to an activation whose lease is valid by this
node's clock (`Lease.fence_at`) and whose claim is not older than the message's; otherwise that
activation stops at once (it was fenced), and the message waits, then goes where the bucket says.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import Actor, ActorioException, ChildSpec, SupervisorStrategy, dead_letters
from ..lowlevel import LogLimit, Mailbox, task_of
from ._codec import ERROR, encode_error
from ._connection import count_whole_messages, synced
from ._entity_persistence import WAKE
from ._errors import ActorNotFound
from ._fencing import set_fencing_token
from ._forwarding import LEASE, OWNER_FRESH, Forwarder
from ._keeper import PublicationSupervisor, Target
from ._placement import BucketFull, Lease, Owner, Placements, check_key, entity_name
from ._publication import Receiver, wait_handled

if TYPE_CHECKING:
    from ._durable_entities import DurableMailbox
    from ._entities import Entities
    from ._entity_persistence import Reminders
    from ._publication import Spawn

__all__ = [
    "ERROR_TYPE",
    "LEASE",
    "MAX_ACTIVE",
    "MAX_PENDING",
    "Activation",
    "EntityHost",
    "EntityMoved",
    "HostFull",
]

_logger = logging.getLogger("actorio.nats")

MAX_PENDING = 10000
"""Messages held for one key while it is being activated or passivated; beyond, each is refused."""

MAX_ACTIVE = 100_000
"""The default bound on one type's activations on one node (``node.host(max_active=...)``)."""

_MAX_CLAIM = 2**63


class EntityMoved(Exception):
    """Answered to an ask that reached a node not holding its key: its sender routes it again."""


class HostFull(ActorioException):
    """A key could not be activated: its host holds ``max_active`` activations of the type and
    none of them is idle (each is handling a message) to be passivated for it. An ask gets it (as
    a `RemoteError` named ``HostFull``), a tell is a dead letter (reason ``overflow``); nothing
    was handled, and a later message may find room."""


ERROR_TYPE = "Actorio-Error-Type"
"""Set on the answer ``EntityMoved``, so the asking node knows it without reading the body."""


# -- hosting a type ------------------------------------------------------------------------------

_CLAIMING, _DRAINING, _ACTIVE, _PASSIVATING = "claiming", "draining", "active", "passivating"


class Activation:
    """One key on its host: claimed, active (a lease and an actor), or passivating."""

    __slots__ = ("key", "state", "lease", "mailbox", "supervisor", "last", "pending", "renewal", "checked")

    def __init__(self, key: str) -> None:
        self.key = key
        self.state = _CLAIMING
        self.lease: Lease | None = None
        self.mailbox: Mailbox | None = None
        self.supervisor: PublicationSupervisor | None = None
        self.last = 0.0
        self.pending: collections.deque[Msg] | None = None
        """What waits for the key to be active (none kept once it is: a deque is 760 bytes)."""
        self.renewal: asyncio.Task[None] | None = None
        """The renewal under way, if any."""
        self.checked = -math.inf
        """When (the host's clock) a message with a newer claim last made the host read the entry."""


class EntityHost:
    """One entity type hosted by one node (returned by `Node.host`).

    ``activations`` maps each key active here (or being activated or passivated) to its state;
    ``started`` counts the activations started here. For a durable type, what is placed and
    activated is a shard (its number is the key here), whose keys' entities run in its pump
    (``_durable_shards``); `active` finds a key's entity either way. `close` stops hosting the
    type.

    ``max_active`` bounds the activations held at once (None: no bound). A key to activate when
    the host is full takes the place of the least recently used idle activation (one waiting for
    a message, not in a handler), which is passivated as an idle one is (teardown, lease
    released) before the new key is claimed; ``evicted`` counts them. If every activation is
    handling a message, the new key is refused (`HostFull`) at once rather than held;
    ``refused`` counts those refusals. For a durable type it bounds the keys' entities running
    here (over all the type's shards), not the shards: a key without room is not refused, its
    messages stay stored and wait in its shard's pump (retried as a failed start is).
    """

    def __init__(
        self,
        entities: Entities,
        entity_type: str,
        factory: Callable[[str], Actor[Any]],
        placements: Placements,
        *,
        idle_timeout: float,
        supervision: SupervisorStrategy | None,
        receiver: Receiver,
        spawn: Spawn,
        max_active: int | None = MAX_ACTIVE,
    ) -> None:
        self._entities = entities
        self.entity_type = entity_type
        self._factory = factory
        self.placements = placements
        self.idle_timeout = idle_timeout
        self.max_active = max_active
        self.evicted = 0
        """How many activations were passivated to make room for another (``max_active``)."""
        self.refused = 0
        """How many activations were refused because every one held was busy (`HostFull`)."""
        # The activations counted by max_active (admitted, not yet ended), least recently
        # delivered to first: the eviction order.
        self._recent: collections.OrderedDict[str, Activation] = collections.OrderedDict()
        self._forwarder = Forwarder(entities, entity_type, placements, spawn)
        self._supervision = supervision
        self._receiver = receiver
        self._spawn = spawn
        self._nc = entities._nc  # pyright: ignore[reportPrivateUsage]
        self._clock = entities._clock  # pyright: ignore[reportPrivateUsage]
        self.activations: dict[str, Activation] = {}
        self.started = 0
        """How many activations started on this node."""
        self.reminders: Reminders | None = None
        """The durable reminders of a persistent type (``host(journal=...)``), else None."""
        self.serving = True
        self.durable: DurableMailbox | None = None
        """A durable type's mailbox (``_durable_entities``): its messages come from there."""
        self._subscription: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._renewals = asyncio.Semaphore(64)
        self._refusals = LogLimit(_logger)
        lease = placements.ttl - placements.guard
        self.tick = min(placements.guard / 4, lease / 6, idle_timeout / 2, 1.0)
        """How often leases, fences and idleness are checked."""

    @property
    def subject(self) -> str:
        """What this node subscribes to for the type: ``<prefix>.entity.<type>.<node id>.*``."""
        return self._entities.subject(self.entity_type, self._entities.node_id, "*")

    def active(self, key: str) -> Actor[Any] | None:
        """The actor of ``key`` if it is active on this node now (its lease valid), else None."""
        if self.durable is not None:
            return self.durable.active(key)
        activation = self.activations.get(key)
        if activation is None or activation.state != _ACTIVE or activation.mailbox is None:
            return None
        if activation.lease is None or not activation.lease.valid(self._clock()):
            return None
        return activation.mailbox.actor

    def holder(self, key: str) -> Activation | None:
        """The activation here whose lease covers ``key``: the key's own or, for a durable type,
        its shard's (None: none here now)."""
        if self.durable is not None:
            return self.activations.get(str(self.durable.shard_of(key)))
        return self.activations.get(key)

    async def open(self) -> None:
        """Subscribe, and start checking leases; return once the server has the subscription."""
        # nats-py leaves a parameter of subscribe() unannotated.
        self._subscription = await self._nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
            self.subject, cb=self._on_message
        )
        count_whole_messages(self._subscription)
        await synced(self._nc, self._subscription)
        self._ticker = self._spawn(self._tick_forever())

    async def close(self, timeout: float = 10.0) -> None:
        """Stop hosting the type: unsubscribe, then passivate every activation (teardown runs,
        placements released) and forward what waited for them, within ``timeout``. Idempotent."""
        deadline = asyncio.get_running_loop().time() + timeout
        self.serving = False
        subscription, self._subscription = self._subscription, None
        if subscription is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.reminders is not None:
            await self.reminders.close()
        activations = list(self.activations.values())
        if activations:
            await asyncio.wait(
                [self._spawn(self._passivate(a, release=True, timeout=timeout)) for a in activations],
                timeout=timeout,
            )
        await self._forwarder.flushed(deadline - asyncio.get_running_loop().time())
        if self.durable is not None:
            await self.durable.close()
        self._entities.hosted.pop(self.entity_type, None)

    # -- receiving -----------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        key = msg.subject.rsplit(".", 1)[-1]
        claim = _claim_of(msg)
        try:
            check_key(key)
            if self.durable is not None:
                self.durable.check_shard(key)
            if claim is None:
                raise ValueError(f"a message to an entity without a valid {LEASE} header")
        except ValueError as error:
            await self._refuse(msg, entity_name(self.entity_type, key[:40]), error)
            return
        activation = self.activations.get(key)
        if activation is None:
            if not self.serving:
                await self._redirect(msg, key)
                return
            activation = self.activations[key] = Activation(key)
            activation.pending = collections.deque((msg,))
            self._spawn(self._activate(activation))
        elif activation.state != _ACTIVE:
            self._hold(activation, msg)
        else:
            await self._deliver(activation, msg, claim)

    def _hold(self, activation: Activation, msg: Msg) -> None:
        pending = activation.pending
        if pending is None:
            pending = activation.pending = collections.deque()
        if len(pending) >= MAX_PENDING:
            self._spawn(self._refuse(msg, self._identifier(activation.key), None, overflow=True))
        else:
            pending.append(msg)

    async def _deliver(self, activation: Activation, msg: Msg, claim: int) -> None:
        lease, mailbox = activation.lease, activation.mailbox
        assert lease is not None
        assert mailbox is not None
        now = self._clock()
        if not lease.valid(now):
            # Fenced: the lease is over by this node's clock. It must not act.
            self._hold(activation, msg)
            self._spawn(self._passivate(activation, release=False, timeout=self.placements.stop_timeout))
            return
        if claim > lease.claim:
            # Routed with a newer claim than this activation's: the key moved behind this node's
            # back, or the header is forged. The bucket decides, not the header: read it (one
            # read at a time; a renewal, a compare-and-set which passivates, only if it names
            # another holder: a forged header costs no write), and route the message as one for
            # a key this node does not hold.
            if activation.renewal is None and now - activation.checked >= OWNER_FRESH:
                activation.checked = now  # a read a second at most, however many such messages
                activation.renewal = self._spawn(self._renew(activation, lease, if_moved=True))
            await self._redirect(msg, activation.key)
            return
        if msg.reply and 0 < claim < lease.claim:
            # An ask routed to an earlier activation of the key (held while it passivated): its
            # asker sends it again once it sees the entry name another claim, so handling this
            # copy too could handle it twice. Answered `EntityMoved`: the asker routes it again.
            await self._redirect(msg, activation.key)
            return
        if self.durable is not None:  # a wake: the shard's pump fetches its messages
            await self.durable.woken(activation, msg)
            return
        if msg.headers and WAKE in msg.headers:
            # It only activated the key (its due reminders fire from its recovery). A wake is
            # an empty tell: one with a payload or a reply address was not sent by actorio.
            if msg.data or msg.reply:
                problem = ValueError(f"a message with an {WAKE} header must be empty and told")
                await self._refuse(msg, self._identifier(activation.key), problem)
            return
        activation.last = now
        if activation.key in self._recent:  # 65 ns (100,000 keys); a delivery costs ~300 us
            self._recent.move_to_end(activation.key)
        # One subscription serves every key of the type: a full mailbox drops, it does not wait.
        await self._receiver.receive(mailbox.actor, msg, wait_for_room=False)

    async def _refuse(
        self, msg: Msg, identifier: str, error: Exception | None, *, overflow: bool = False
    ) -> None:
        reply = msg.reply or None
        if reply is not None and self._receiver.destinations.refusal(reply) is None:
            problem = error if error is not None else ActorNotFound(identifier, msg.subject)
            await self._receiver.send(identifier, reply, encode_error(problem, identifier), ERROR)
        else:
            if overflow:
                dead_letters.record(msg.data, identifier, "overflow", error)
            elif error is not None:
                dead_letters.record(msg.data, identifier, "invalid", error)
            else:
                dead_letters.record(msg.data, identifier, "stopped")

    async def _redirect(self, msg: Msg, key: str, *, admitted: bool = False) -> None:
        """A message this node will not handle (it does not hold the key, or stopped hosting):
        an ask is answered `EntityMoved` (its sender routes it again); a tell is forwarded to
        the key's owner, if there is one, or to a live host otherwise (``_forwarding``: queued,
        so that reading the owner holds up none of the type's messages; ``admitted``, held
        within a key's own bound already, whatever the queue holds)."""
        identifier = self._identifier(key)
        reply = msg.reply or None
        if reply is not None:
            if self._receiver.destinations.refusal(reply) is None:
                body = encode_error(
                    EntityMoved(f"{identifier} is not on node {self._entities.node_id}"), identifier
                )
                await self._receiver.send(identifier, reply, body, {**ERROR, ERROR_TYPE: "EntityMoved"})
            else:
                dead_letters.record(msg.data, identifier, "invalid")
            return
        self._forwarder.forward(msg, key, admitted=admitted)

    def _identifier(self, key: str) -> str:
        return entity_name(self.entity_type, key)

    # -- activation ----------------------------------------------------------------------------

    async def _activate(self, activation: Activation) -> None:
        """Claim the key, start the entity, then hand it what arrived meanwhile, in order."""
        key = activation.key
        identifier = self._identifier(key)
        if not await self._room_for(activation):
            full = HostFull(
                f"{identifier} not activated: node {self._entities.node_id} holds max_active="
                f"{self.max_active} activations of {self.entity_type!r}, all handling a message"
            )
            self.refused += 1
            self._refusals.log(logging.WARNING, "%s", full)
            await self._give_up(activation, full)
            return
        try:
            claimed = await self.placements.claim(key)
        except (nats.errors.Error, asyncio.TimeoutError, BucketFull) as error:
            self._refusals.log(logging.WARNING, "%s could not be claimed: %r", identifier, error)
            await self._give_up(activation, error)
            return
        if isinstance(claimed, Owner) or not self.serving:
            if not isinstance(claimed, Owner):
                await self.placements.release(key, claimed)
            await self._give_up(activation, None)
            return
        lease = claimed
        activation.lease = lease  # before the entity starts: its journal writes are fenced by it
        set_fencing_token(lease.claim)  # this task's context: the tasks started below inherit it
        try:
            if self.durable is not None:  # a shard: its keys' entities start in its pump
                mailbox, supervisor = await self.durable.start_shard(key)
            else:
                mailbox, supervisor = await self.start_entity(key)
        except Exception as error:
            await self.placements.release(key, lease)
            await self._give_up(activation, error)
            return
        activation.lease, activation.mailbox, activation.supervisor = lease, mailbox, supervisor
        activation.last = self._clock()
        activation.state = _DRAINING
        if self.durable is not None:
            self.durable.started(activation)
        self.started += 1
        task = task_of(supervisor) if supervisor is not None else None
        if task is not None:
            # The supervision gave up on the entity: this activation ends (the next message
            # activates it again, from its factory).
            task.add_done_callback(
                lambda _: self._spawn(self._passivate(activation, release=True, timeout=1.0))
            )
        while activation.pending and activation.state == _DRAINING:
            if not lease.valid(self._clock()):
                # Fenced before what waited was delivered (a slow start, a stalled loop): it stays
                # held for the passivation, which gives it up. (Delivered one by one, each would
                # be held again: a loop that never yields.)
                self._spawn(self._passivate(activation, release=False, timeout=self.placements.stop_timeout))
                return
            msg = activation.pending.popleft()
            await self._deliver(activation, msg, _claim_of(msg) or 0)
        if activation.state == _DRAINING:
            activation.state = _ACTIVE
            activation.pending = None  # (empty: the loop above ended)

    async def start_entity(self, key: str) -> tuple[Mailbox, PublicationSupervisor | None]:
        """Start the entity of ``key`` from the type's factory, supervised as a published factory
        is: its mailbox and its supervisor. Raises what its first start raised."""
        # A fenced activation must be stopped within the guard: its handler gets a quarter of it.
        spec = ChildSpec(functools.partial(self._factory, key), stop_timeout=self.placements.stop_timeout)
        return await Target.of(self._identifier(key), spec, self._supervision).start()

    async def _room_for(self, activation: Activation) -> bool:
        """Count ``activation`` among the ``max_active``, first passivating the least recently
        used idle activations while the host is full; False if none of them is idle."""
        limit = self.max_active if self.durable is None else None  # durable: keys, in the pumps
        while limit is not None and len(self._recent) >= limit:
            victim = next((a for a in self._recent.values() if a.state == _ACTIVE and _idle(a)), None)
            if victim is None:
                return False
            self.evicted += 1
            await self._passivate(victim, release=True, timeout=self.placements.stop_timeout)
        self._recent[activation.key] = activation
        return True

    def _forget(self, activation: Activation) -> None:
        """``activation`` has ended (or never started): it no longer holds the key here."""
        if self.activations.get(activation.key) is activation:
            del self.activations[activation.key]
        if self._recent.get(activation.key) is activation:
            del self._recent[activation.key]

    async def _give_up(self, activation: Activation, error: Exception | None) -> None:
        """The key is not activated here: what waited for it goes where the bucket says (or,
        after an error, is refused; a tell refused for `HostFull` or `BucketFull` is an
        ``overflow``)."""
        self._forget(activation)
        pending, activation.pending = activation.pending or (), None
        for msg in pending:
            if error is None:
                await self._redirect(msg, activation.key, admitted=True)
            elif msg.headers and WAKE in msg.headers and not msg.data and not msg.reply:
                # A wake carries no message: what it was for (a durable type's stored messages,
                # a due reminder) stays stored, and the type's scans wake the key again.
                continue
            else:
                overflow = isinstance(error, (HostFull, BucketFull))
                await self._refuse(msg, self._identifier(activation.key), error, overflow=overflow)

    async def _passivate(self, activation: Activation, *, release: bool, timeout: float) -> None:
        """Stop an activation: its teardown runs, then its placement is released (``release``;
        else it was fenced and is left to expire). Messages that arrive meanwhile wait, then
        activate the key again (here, or where the bucket says)."""
        if activation.state in (_PASSIVATING, _CLAIMING):
            return
        activation.state = _PASSIVATING
        mailbox, supervisor, lease = activation.mailbox, activation.supervisor, activation.lease
        if self.durable is not None:
            await self.durable.stopping(activation, release=release, timeout=timeout)
        if release and mailbox is not None and mailbox.actor.running:
            # Idle, or the node closing: let it finish what it was told, within the timeout.
            with contextlib.suppress(asyncio.TimeoutError):
                actor = mailbox.actor
                await asyncio.wait_for(wait_handled(actor, self._receiver.ended(actor)), timeout)
        if supervisor is not None:
            await supervisor.stop(timeout)
        if activation.renewal is not None:
            # Release the revision the renewal writes, not the one it replaces.
            await asyncio.wait([activation.renewal], timeout=timeout)
        lease = activation.lease
        if release and lease is not None:
            await self.placements.release(activation.key, lease)
        self._forget(activation)
        if activation.pending:
            if self.serving and release:
                again = self.activations[activation.key] = Activation(activation.key)
                again.pending = activation.pending
                self._spawn(self._activate(again))
            else:
                await self._give_up(activation, None)

    # -- leases --------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.check(self._clock())

    def check(self, now: float) -> None:
        """Look at every activation at ``now``: passivate the fenced and the idle ones, renew the
        leases that are due."""
        for activation in list(self.activations.values()):
            lease = activation.lease
            if activation.state != _ACTIVE or lease is None:
                continue
            if not lease.valid(now):
                self._spawn(self._passivate(activation, release=False, timeout=self.placements.stop_timeout))
            elif now - activation.last >= self.idle_timeout:
                self._spawn(self._passivate(activation, release=True, timeout=self.placements.stop_timeout))
            elif now >= lease.renew_at and activation.renewal is None:
                activation.renewal = self._spawn(self._renew(activation, lease))

    async def _renew(self, activation: Activation, lease: Lease, *, if_moved: bool = False) -> None:
        """Renew ``lease`` (passivate the activation if the entry names another holder now);
        ``if_moved``: only if a read of the entry finds that it no longer names ``lease``."""
        try:
            async with self._renewals:
                remaining = lease.fence_at - self._clock()
                if remaining <= 0:
                    return
                if if_moved:
                    found = await asyncio.wait_for(self.placements.lookup_entry(activation.key), remaining)
                    owned = found is not None and found[0] == Owner(self._entities.node_id, lease.claim)
                    if owned and self._clock() < lease.renew_at:
                        return  # the entry names this lease: the newer claim was forged
                    # (Due, it is renewed here: a flood of forged claims, each taking the renewal
                    # slot for a read, must not leave the lease unrenewed until its fence.)
                    remaining = lease.fence_at - self._clock()
                    if remaining <= 0:
                        return
                renewed = await asyncio.wait_for(self.placements.renew(activation.key, lease), remaining)
        except (nats.errors.Error, asyncio.TimeoutError) as error:
            self._refusals.log(
                logging.WARNING, "%s: the lease was not renewed: %r", self._identifier(activation.key), error
            )
            return  # tried again at the next tick, until the fence
        finally:
            activation.renewal = None
        if activation.lease is not lease:
            return
        if renewed is None:  # someone else holds the key now: stop at once
            self._refusals.log(
                logging.WARNING,
                "%s: the lease was lost (the placement entry changed: another node holds the key, "
                "or something else wrote it); the entity stops here",
                self._identifier(activation.key),
            )
            self._spawn(self._passivate(activation, release=False, timeout=self.placements.stop_timeout))
        else:
            activation.lease = renewed


def _idle(activation: Activation) -> bool:
    """Whether the activation's actor waits for a message (not in a handler, nothing queued)."""
    mailbox = activation.mailbox
    return mailbox is not None and mailbox.waiting is not None and not len(mailbox)


def _claim_of(msg: Msg) -> int | None:
    value = (msg.headers or {}).get(LEASE)
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    claim = int(value)
    return claim if claim < _MAX_CLAIM else None
