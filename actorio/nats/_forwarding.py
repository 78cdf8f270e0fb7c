"""`Forwarder`: the tells an entity host will not handle, sent on to where the key is held.

A host forwards a tell for a key it does not hold (it stopped hosting, lost a claim, gave up
activating), or routed with a newer claim than its activation's (the key moved behind its back,
or the ``Actorio-Lease`` header is forged), to the key's owner as the bucket names it, or to
another live host. The owner's read from the bucket is a round trip to the server: awaited in
the type's one subscription, every key's messages waited behind it, and a flood of forged
claims (over as many keys as the sender pleased) held the whole type up. So the tells are
queued and forwarded in order by a task of their own, one read at a time, a key's owner read at
most once a second; the queue is bounded (`MAX_MESSAGES`, `MAX_BYTES`: beyond, a tell is a dead
letter ``overflow``) for what arrives, not for what a key held within its own bound; a tell
that fails to be forwarded is a dead letter ``stopped`` alone, and what is left when the host
closes is dead letters ``stopped``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg

from .. import dead_letters
from ..lowlevel import LogLimit
from ._codec import sendable_headers, wire_size
from ._placement import Owner, Placements, entity_name

if TYPE_CHECKING:
    from ._entities import Entities

__all__ = ["HOPS", "LEASE", "MAX_BYTES", "MAX_HOPS", "MAX_MESSAGES", "Forwarder"]

_logger = logging.getLogger("actorio.nats")

LEASE = "Actorio-Lease"
"""The claim revision a message was routed with (``0``: its sender found the key free)."""
HOPS = "Actorio-Hops"
"""How many times a tell was forwarded from a node that no longer held its key."""
MAX_HOPS = 3
"""A tell forwarded this many times is a dead letter: the placement moves faster than it."""
MAX_MESSAGES = 10_000
"""Tells one host's type holds to forward, at most."""
MAX_BYTES = 16 * 1024 * 1024
"""Their payloads' bytes, at most."""
OWNER_FRESH = 1.0
"""Seconds a key's owner, read to forward a tell, is taken as read."""
_MAX_OWNERS = 100_000  # the keys whose owner is kept so (the latest read)
_ANY_KEY = ""  # no key is empty: where a read that timed out is kept, for every key


class Forwarder:
    """The tells one hosted type forwards (see the module)."""

    def __init__(
        self,
        entities: Entities,
        entity_type: str,
        placements: Placements,
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
    ) -> None:
        self._entities = entities
        self._entity_type = entity_type
        self._placements = placements
        self._spawn = spawn
        self._nc = entities._nc  # pyright: ignore[reportPrivateUsage]
        self._queue: collections.deque[tuple[Msg, str, int]] = collections.deque()
        self._failures = LogLimit(_logger)
        self._bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._owners: collections.OrderedDict[str, tuple[float, Owner | Exception | None]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        """The tells waiting to be forwarded."""
        return len(self._queue)

    async def flushed(self, timeout: float) -> None:
        """Return once the tells queued are forwarded, or after ``timeout`` seconds."""
        task = self._task
        if task is not None and timeout > 0:
            await asyncio.wait([task], timeout=timeout)

    def forward(self, msg: Msg, key: str, *, admitted: bool = False) -> None:
        """Queue the tell ``msg`` for ``key``, to be forwarded after those queued before it.
        Beyond `MAX_MESSAGES` or `MAX_BYTES` (a message's size on the wire, headers included),
        a dead letter ``overflow``, unless ``admitted``: held already within another bound (what
        waited for a key this host could not activate), it is queued whatever the queue holds."""
        size = wire_size(msg.data, msg.headers)
        if not admitted and (len(self._queue) >= MAX_MESSAGES or self._bytes + size > MAX_BYTES):
            full = RuntimeError(f"{self._identifier(key)}: too many tells waiting to be forwarded")
            dead_letters.record(msg.data, self._identifier(key), "overflow", full)
            return
        self._queue.append((msg, key, size))
        self._bytes += size
        if self._task is None or self._task.done():  # (done: its end not seen yet)
            task = self._task = self._spawn(self._run())
            if task.done():  # an eager task factory ran it to its end already
                self._ended(task)
            else:
                task.add_done_callback(self._ended)

    async def _run(self) -> None:
        queue = self._queue
        while queue:
            msg, key, size = queue[0]
            try:
                await self._send(msg, key)
            except Exception as error:  # a placement function's, say: this tell's alone
                dead_letters.record(msg.data, self._identifier(key), "stopped", error)
                self._failures.log(
                    logging.ERROR, "%s: a tell was not forwarded: %r", self._identifier(key), error
                )
            queue.popleft()
            self._bytes -= size

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """The queue's task is done. Cancelled (the host closes; before its first step too) or
        failed, what is left is dead letters ``stopped``; unless another task took over."""
        if self._task is not task:
            return
        self._task = None
        if task.cancelled() or task.exception() is not None:
            for msg, key, _ in self._queue:
                dead_letters.record(msg.data, self._identifier(key), "stopped")
            self._queue.clear()
            self._bytes = 0

    async def _send(self, msg: Msg, key: str) -> None:
        """Forward ``msg`` to the key's owner, if another node holds it, or to a live host of the
        type other than this one (a dead letter if there is none), unless it was forwarded
        `MAX_HOPS` times already."""
        identifier = self._identifier(key)
        hops = _hops_of(msg)
        if hops >= MAX_HOPS:
            dead_letters.record(msg.data, identifier, "stopped")
            return
        here = self._entities.node_id
        try:
            owner = await self._owner(key)
        except (nats.errors.Error, asyncio.TimeoutError) as error:  # this second's, for this key
            dead_letters.record(msg.data, identifier, "stopped", error.with_traceback(None))
            return
        if owner is not None and owner.node != here:
            node, claim = owner.node, owner.claim
        else:
            hosts = [h for h in self._entities.hosts.live(self._entity_type) if h.node != here]
            if not hosts:
                nowhere = RuntimeError(
                    f"{identifier}: not held by node {here} for the message's {LEASE} claim, and no "
                    "other live host of the type was found"
                )
                dead_letters.record(msg.data, identifier, "stopped", nowhere)
                return
            node, claim = self._entities.placement(key, hosts).node, 0
        headers = sendable_headers(msg.headers or {})
        headers[LEASE] = str(claim)
        headers[HOPS] = str(hops + 1)
        try:
            await self._nc.publish(
                self._entities.subject(self._entity_type, node, key), msg.data, headers=headers
            )
        except nats.errors.MaxPayloadError as error:  # the routing headers took it past the limit
            dead_letters.record(msg.data, identifier, "overflow", error)
        except nats.errors.Error as error:  # the connection closing or failed: not sent
            dead_letters.record(msg.data, identifier, "stopped", error)

    async def _owner(self, key: str) -> Owner | None:
        """Who holds ``key``: the bucket's entry, read at most once every `OWNER_FRESH` seconds,
        its failure too (raised again for the key's tells within that time, without a read; a
        read that timed out, for every key's: the server is not answering)."""
        owners = self._owners
        now = asyncio.get_running_loop().time()
        while owners and now - next(iter(owners.values()))[0] >= OWNER_FRESH:
            owners.popitem(last=False)  # in the order they were read: none older is used
        known = owners.get(key) or owners.get(_ANY_KEY)
        if known is not None:
            if isinstance(known[1], Exception):
                raise known[1]
            return known[1]
        try:
            owner = await self._placements.lookup(key)
        except (nats.errors.Error, asyncio.TimeoutError) as error:
            # Kept from the failure's time: a read that timed out took seconds.
            self._remember(key, error, asyncio.get_running_loop().time())
            if isinstance(error, asyncio.TimeoutError):  # (nats-py's timeouts are asyncio's too)
                self._remember(_ANY_KEY, error, asyncio.get_running_loop().time())
            raise
        self._remember(key, owner, now)  # from when it was asked: the entry may be older still
        return owner

    def _remember(self, key: str, found: Owner | Exception | None, at: float) -> None:
        """Keep what a read of ``key`` found, as of ``at`` (the loop's clock)."""
        owners = self._owners
        latest = next(reversed(owners.values()))[0] if owners else at
        owners[key] = (max(at, latest), found)  # (never before the last kept: pruned in order)
        owners.move_to_end(key)
        if len(owners) > _MAX_OWNERS:
            owners.popitem(last=False)

    def _identifier(self, key: str) -> str:
        return entity_name(self._entity_type, key)


def _hops_of(msg: Msg) -> int:
    value = (msg.headers or {}).get(HOPS, "0")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 3 else MAX_HOPS
