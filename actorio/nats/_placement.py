"""Placement of entities on NATS: who holds which key, for how long, and which nodes host a type.

Owns:

- the rules for entity type names and keys (`check_entity_type`, `check_key`): both travel as
  subject tokens and key-value keys, so both are bounded and drawn from a safe set;
- `Lease`: the timing of one held placement, as pure arithmetic on a clock reading (no I/O): when
  to renew, and until when the holder may act (its fence);
- `Placements`: one entity type's key-value bucket (JetStream), whose TTL is the lease: a claim is
  a create-if-absent, a renewal a compare-and-set on the last revision, a release a delete on that
  revision; an entry that is not renewed expires, and the key is free again;
- `BucketFull`: what a write to one of a type's buckets raises when the bucket holds its
  ``max_bytes`` (this one, or the index of due reminders);
- `Hosts`: which nodes host which types, and how loaded they are, from the announcements hosting
  nodes publish (and repeat) on ``<prefix>.entities.hosts``; `least_loaded` and `rendezvous`,
  the two ways of choosing a node for a key nobody holds.

No membership or consensus of our own: the bucket (its create-if-absent and compare-and-set,
decided by the server) is the only arbiter of who holds a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from .. import ActorioException
from ..lowlevel import LogLimit
from ._errors import NO_JETSTREAM, jetstream_missing
from ._stream_setup import bucket_found_or_made

__all__ = [
    "BUCKET_MAX_BYTES",
    "MAX_KEY_CHARS",
    "BucketFull",
    "Host",
    "Hosts",
    "Lease",
    "Owner",
    "Placement",
    "Placements",
    "bucket_name",
    "check_entity_type",
    "check_key",
    "entity_name",
    "full_bucket",
    "least_loaded",
    "rendezvous",
]

_logger = logging.getLogger("actorio.nats")

MAX_KEY_CHARS = 128
"""The longest entity key (and entity type name)."""

_TOKEN = re.compile(rf"[A-Za-z0-9_=-]{{1,{MAX_KEY_CHARS}}}")
_TYPE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_MAX_VALUE_BYTES = 512

BUCKET_MAX_BYTES = 1024**3
"""The default size bound of a type's placement bucket (1 GiB: a few million keys held at once;
an entry is a key, a node id and a revision, about 300 bytes stored)."""


class BucketFull(ActorioException):
    """The server refused a write to one of an entity type's key-value buckets: the bucket holds
    its ``max_bytes``. Nothing was written. ``bucket`` names it. A placement bucket frees itself
    as leases expire or are released; an index of due reminders, as reminders fire."""

    def __init__(self, bucket: str, what: str) -> None:
        self.bucket = bucket
        super().__init__(f"the key-value bucket {bucket} is full (its max_bytes): {what} was not written")


def full_bucket(error: BaseException, bucket: str, what: str) -> BucketFull | None:
    """The `BucketFull` that ``error`` (from a write to ``bucket``) means, or None if it is not a
    refusal for size ("maximum bytes exceeded", JetStream's error 10077)."""
    if isinstance(error, nats.js.errors.APIError) and "maximum bytes" in (error.description or ""):
        return BucketFull(bucket, what)
    return None


_MAX_ANNOUNCEMENT_BYTES = 16384
_MAX_HOSTS = 10000
_MAX_TYPES_PER_HOST = 100
_MAX_EVERY = 60.0
"""The longest announcement period a host may give (nodes announce every second): one that
announced a longer one would be taken for live long after it went silent."""
_FORGOTTEN_AFTER = 3600.0
"""Seconds after which a silent host is forgotten."""


def check_key(key: object) -> str:
    """An entity key: 1 to 128 characters among letters, digits, ``_``, ``-`` and ``=`` (so that a
    base64url encoding of anything fits). ``ValueError`` (``TypeError`` for a non-string)
    otherwise: the key becomes a subject token and a key-value key, where ``.``, ``*``, ``>``,
    spaces and control characters have meanings or are refused."""
    if not isinstance(key, str):
        raise TypeError(f"an entity key is a string, not {type(key).__name__}")
    if not _TOKEN.fullmatch(key):
        shown = key if len(key) <= 40 else key[:40] + "..."
        raise ValueError(
            f"invalid entity key {shown!r} ({len(key)} characters): use 1 to {MAX_KEY_CHARS} letters, "
            "digits, '_', '-' or '=' (encode other keys, e.g. with base64.urlsafe_b64encode)"
        )
    return key


def check_entity_type(name: object) -> str:
    """An entity type name: 1 to 64 letters, digits, ``_`` or ``-`` (``ValueError`` otherwise)."""
    if not isinstance(name, str) or not _TYPE.fullmatch(name):
        raise ValueError(f"invalid entity type name {name!r}: use 1 to 64 letters, digits, '_' or '-'")
    return name


def entity_name(entity_type: str, key: str) -> str:
    """An entity's name, ``<type>/<key>``: its actor's name, and how logs and dead letters name it."""
    return f"{entity_type}/{key}"


def bucket_name(prefix: str, entity_type: str) -> str:
    """The key-value bucket of an entity type: readable, and distinct for distinct pairs."""
    digest = hashlib.sha1(f"{prefix}.{entity_type}".encode()).hexdigest()[:8]
    return f"actorio_entities_{prefix.replace('.', '_')}_{entity_type}_{digest}"


# -- leases ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lease:
    """A placement held by this node: pure timing, read against the node's clock (``loop.time()``).

    ``claim`` is the revision of the create that started the lease: the fencing token (it does not
    change when the lease is renewed, and a later holder's is always larger, revisions being a
    stream's sequence numbers). ``revision`` is the entry's latest revision, the one the next
    renewal compares against. ``sent_at`` is when the request that wrote that revision was
    *sent*: the server stored it later, so its entry expires no earlier than ``sent_at + ttl`` on
    the server's clock.

    The holder acts only until `fence_at`, ``sent_at + ttl - guard``: with ``guard`` covering the
    difference of the two clocks' rates over ``ttl`` and the time the holder needs to stop, it has
    stopped before the entry can expire and another node can claim the key.
    """

    claim: int
    revision: int
    sent_at: float
    ttl: float
    guard: float

    @property
    def fence_at(self) -> float:
        """The holder's last moment as the owner: from then on it refuses messages and stops."""
        return self.sent_at + self.ttl - self.guard

    @property
    def renew_at(self) -> float:
        """When to renew: a third of the way to the fence, so that two renewals can fail (or be
        slow) before it."""
        return self.sent_at + (self.ttl - self.guard) / 3

    def valid(self, now: float) -> bool:
        """True while the holder may act as the owner."""
        return now < self.fence_at

    def renewed(self, revision: int, sent_at: float) -> Lease:
        """The lease after a renewal, sent at ``sent_at``, wrote ``revision``."""
        return dataclasses.replace(self, revision=revision, sent_at=sent_at)


@dataclasses.dataclass(frozen=True)
class Owner:
    """A key's holder, as the bucket says: the node and the claim revision (its fencing token)."""

    node: str
    claim: int


def _encode_owner(node: str, claim: int, last: int = 0) -> bytes:
    """The value of an entry, written on the entry's revision ``last`` (0: a create).

    Padded with spaces so that the value and the digits of ``last`` (sent in the write's
    ``Nats-Expected-Last-Subject-Sequence`` header, which the server stores with it) have one
    length: every write of one holder's entry stores the same size. A bucket at its max_bytes
    (discard "new") replaces an entry only by one no larger: without the padding, a renewal
    (a claim of several digits, written on a revision of several) would be refused there."""
    body = f'{{"node":{json.dumps(node)},"claim":{claim}}}'
    return (body + " " * (40 - len(str(claim)) - len(str(last)))).encode()


def _decode_owner(value: bytes | None, revision: int) -> Owner | None:
    """The owner an entry names; None for a value that is not one (the bucket is writable by
    whoever has the permissions: its bytes are read as hostile). An entry not yet renewed holds
    claim 0: its claim is its own revision. A renewed one holds the revision of its create, an
    earlier one: a claim beyond the entry's own revision was not written by a node (a sender
    that believed it would route with it, and be refused, until its route expired)."""
    if value is None or len(value) > _MAX_VALUE_BYTES:
        return None
    try:
        data: object = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    fields = cast("dict[str, object]", data)
    node, claim = fields.get("node"), fields.get("claim")
    if not isinstance(node, str) or not _TOKEN.fullmatch(node):
        return None
    if not isinstance(claim, int) or isinstance(claim, bool) or not 0 <= claim <= revision:
        return None
    return Owner(node, claim or revision)


class Placements:
    """One entity type's placements: a JetStream key-value bucket whose TTL is the lease.

    Every operation is decided by the server: two nodes claiming one key, one gets it; a renewal
    after someone else's claim fails. Errors of the connection propagate (``nats.errors.Error``,
    ``asyncio.TimeoutError``): the caller treats them as "not renewed".
    """

    def __init__(
        self,
        kv: KeyValue,
        *,
        js: JetStreamContext,
        bucket: str,
        ttl: float,
        guard: float,
        node_id: str,
        clock: Callable[[], float],
    ) -> None:
        self._kv = kv
        self._js = js
        self.name = bucket
        """The bucket's name."""
        self._stream = f"KV_{bucket}"
        self._subject = f"$KV.{bucket}."
        self.ttl = ttl
        self.guard = guard
        self.stop_timeout = guard / 4
        """The longest this node waits for an entity of the type to stop (its handler to finish,
        its teardown to run) before it goes on: a quarter of the guard (docs/entities.md)."""
        self._node_id = node_id
        self._clock = clock

    @classmethod
    async def bucket(
        cls, js: JetStreamContext, name: str, ttl: float | None, max_bytes: int | None = BUCKET_MAX_BYTES
    ) -> KeyValue:
        """The bucket ``name``: made with ``ttl`` and ``max_bytes`` (None: no bound) if ``ttl`` is
        given and it is missing; bound otherwise (an existing bucket keeps its configuration).
        ``LookupError`` if it is missing and ``ttl`` is None; ``ValueError`` if it exists with a
        different TTL (every host of a type must use one lease), or if it is missing and could not
        be made."""
        make = (
            None
            if ttl is None
            else {"ttl": ttl, "history": 1, "max_bytes": -1 if max_bytes is None else max_bytes}
        )
        try:
            kv = await bucket_found_or_made(js, name, "an entity type", make)
        except NO_JETSTREAM:
            raise jetstream_missing("an entity type (its placement bucket)") from None
        except nats.js.errors.BucketNotFoundError:
            raise LookupError(name) from None
        if ttl is not None:
            status = await kv.status()
            if status.ttl is not None and abs(status.ttl - ttl) > 1e-3:
                raise ValueError(
                    f"the entity type's bucket {name} has a lease of {status.ttl} s: "
                    f"host it with lease={status.ttl}"
                )
        return kv

    async def claim(self, key: str) -> Lease | Owner:
        """Claim ``key`` if nobody holds it (a create-if-absent): the new `Lease`, or the `Owner`
        that holds it. A key held by this node's earlier lease (released but not deleted) is
        claimed again by a compare-and-set on that entry. `BucketFull` if the bucket is full."""
        try:
            return await self._claim(key)
        except nats.js.errors.APIError as error:
            full = full_bucket(error, self.name, f"the claim of {key!r}")
            if full is None:
                raise
            raise full from None

    async def _claim(self, key: str) -> Lease | Owner:
        for _ in range(3):  # an entry can expire between the create and the read: try again
            sent_at = self._clock()
            try:
                revision = await self._kv.create(key, _encode_owner(self._node_id, 0))
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
                # Held; or (nats-py reads the entry after a failed create) it expired meanwhile.
                pass
            else:
                return Lease(revision, revision, sent_at, self.ttl, self.guard)
            found = await self.lookup_entry(key)
            if found is None:
                continue
            owner, revision = found
            if owner is not None and owner.node != self._node_id:
                return owner
            # Our own stale entry, or one that names nobody readable: take it over on its revision.
            sent_at = self._clock()
            try:
                revision = await self._kv.update(
                    key, _encode_owner(self._node_id, 0, revision), last=revision
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            # Claim 0 in the value: readers take this revision as the claim, as after a create.
            return Lease(revision, revision, sent_at, self.ttl, self.guard)
        found = await self.lookup_entry(key)
        if found is not None and found[0] is not None:
            return found[0]
        raise asyncio.TimeoutError(f"entity key {key!r}: the claim kept racing with expiry")

    async def renew(self, key: str, lease: Lease) -> Lease | None:
        """Renew ``lease`` by a compare-and-set on its revision: the renewed lease, or None if the
        entry is no longer this lease's (it expired, or someone else holds the key now).
        Connection errors propagate."""
        last = lease.revision
        for _ in range(2):
            sent_at = self._clock()
            try:
                revision = await self._kv.update(
                    key, _encode_owner(self._node_id, lease.claim, last), last=last
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                # A renewal given up on here (timed out) may have been written all the same: if
                # the entry is still this lease's, renew on its revision.
                found = await self.lookup_entry(key)
                if found is None or found[0] != Owner(self._node_id, lease.claim):
                    return None
                last = found[1]
            else:
                return lease.renewed(revision, sent_at)
        return None

    async def release(self, key: str, lease: Lease) -> None:
        """Give the key back (a delete on the lease's revision, so never someone else's entry).
        Failing is harmless: the entry expires."""
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await self._kv.delete(key, last=lease.revision)

    async def lookup(self, key: str) -> Owner | None:
        """Who holds ``key`` now, or None."""
        found = await self.lookup_entry(key)
        return None if found is None else found[0]

    async def lookup_entry(self, key: str) -> tuple[Owner | None, int] | None:
        """The entry of ``key`` (its owner, None if unreadable, and its revision), or None."""
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        revision = entry.revision or 0
        return _decode_owner(entry.value, revision), revision

    async def remaining(self, key: str, claim: int) -> float | None:
        """How long the entry of ``key`` that holds ``claim`` has left before it expires: the TTL
        counted from when the server stored it (the server's clock) against this node's wall
        clock, within ``[0, ttl]``; None if the entry no longer holds that claim (expired,
        released, or someone else's). A hint for how long to wait before reading the entry
        again, never a decision on who holds the key: a skewed clock makes the wait longer or
        shorter, never a second owner. Errors of the connection propagate."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._subject + key)
        except nats.js.errors.NotFoundError:
            return None
        # nats-py leaves the headers' dict unparameterised.
        headers = cast("dict[str, str]", msg.headers or {})  # pyright: ignore[reportUnknownMemberType]
        if headers.get("KV-Operation") in ("DEL", "PURGE") or msg.seq is None:
            return None
        owner = _decode_owner(msg.data, msg.seq)
        if owner is None or owner.claim != claim:
            return None
        stored: datetime.datetime | None = getattr(msg, "time", None)  # (an older nats-py has none)
        if stored is None:
            return self.ttl
        return min(max(stored.timestamp() + self.ttl - time.time(), 0.0), self.ttl)


# -- hosts ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Host:
    """A node that hosts an entity type, as its announcements say."""

    node: str
    load: int
    """Its activations of the type, as last announced, plus the keys this node sent it since."""
    seen: float
    """When it was last heard of (this node's clock)."""
    every: float
    """How often it announces itself."""
    since: float = -math.inf
    """When this node first heard it host the type, since it last heard it leave (its clock)."""


Placement = Callable[[str, Sequence[Host]], Host]
"""How a node is chosen for a key nobody holds: ``(key, live hosts of the type) -> host``."""


def least_loaded(key: str, hosts: Sequence[Host]) -> Host:
    """The host with the fewest activations of the type (ties: the smallest node id). The
    default: entities go where there is room, and a node that joins takes new keys first."""
    return min(hosts, key=lambda host: (host.load, host.node))


def rendezvous(key: str, hosts: Sequence[Host]) -> Host:
    """Rendezvous (highest random weight) hashing: every node chooses the same host for a key, and
    a host joining or leaving moves only its share of the choices. Fewer claims race, but the
    load follows the keys, not the room."""

    def weight(host: Host) -> bytes:
        return hashlib.blake2b(f"{host.node}/{key}".encode(), digest_size=8).digest()

    return max(hosts, key=weight)


class Hosts:
    """Which nodes host which entity types, from their announcements (see the module docstring).

    A host is live while it has announced itself within three of its announcement periods (each at
    most a minute); one that leaves announces that it does, and is forgotten. An announcement
    is read as hostile: a bounded size, node ids and type names checked, at most 100 types a
    host and 10,000 (type, host) pairs remembered in all, each one's cost bounded by its own
    size (not by what is remembered), and a turn of the event loop given every 100 of a backlog.
    """

    def __init__(self, nc: Client, *, prefix: str, clock: Callable[[], float]) -> None:
        self._nc = nc
        self.subject = f"{prefix}.entities.hosts"
        self.probe_subject = f"{prefix}.entities.probe"
        self._clock = clock
        self._hosts: dict[str, dict[str, Host]] = {}  # entity type -> node -> host
        self._types_of: dict[str, set[str]] = {}  # node -> the types it hosts, as remembered
        self._count = 0  # (type, node) pairs remembered, at most _MAX_HOSTS
        self._read = 0  # announcements read
        self._changed = asyncio.Event()
        self._subscription: Subscription | None = None
        self._refused = LogLimit(_logger, limit=1, window=60.0)

    async def open(self) -> None:
        """Subscribe to announcements, and ask the hosts to announce themselves now."""
        if self._subscription is not None:
            return
        # nats-py leaves a parameter of subscribe() unannotated.
        self._subscription = await self._nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
            self.subject, cb=self._on_announcement
        )
        await self._nc.publish(self.probe_subject, b"")

    async def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    async def _on_announcement(self, msg: Msg) -> None:
        self.heard(msg.data)
        self._read += 1
        if self._read % 100 == 0:
            await asyncio.sleep(0)  # a backlog (a flood) is read without the loop's other work waiting

    def heard(self, data: bytes) -> None:
        """Read one announcement: ``{"node": id, "every": seconds, "types": {type: load}}``; a
        host whose ``types`` is empty has left."""
        if len(data) > _MAX_ANNOUNCEMENT_BYTES:
            self._refused.log(
                logging.WARNING, "an entity host announcement of %d bytes was ignored", len(data)
            )
            return
        try:
            parsed: object = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
        fields = cast("dict[str, object]", parsed) if isinstance(parsed, dict) else {}
        node, every, types = fields.get("node"), fields.get("every"), fields.get("types")
        if (
            not isinstance(node, str)
            or not _TOKEN.fullmatch(node)
            or not isinstance(every, (int, float))
            or isinstance(every, bool)
            or not 0.01 <= every <= _MAX_EVERY
            or not isinstance(types, dict)
            or len(cast("dict[object, object]", types)) > _MAX_TYPES_PER_HOST
        ):
            self._refused.log(
                logging.WARNING, "an invalid entity host announcement was ignored: %r", data[:200]
            )
            return
        now = self._clock()
        loads = cast("dict[object, object]", types)
        mine = self._types_of.pop(node, set())
        kept: set[str] = set()
        for name, load in loads.items():
            if not isinstance(name, str) or not _TYPE.fullmatch(name):
                continue
            if not isinstance(load, int) or isinstance(load, bool) or load < 0:
                continue
            hosts = self._hosts.get(name)
            if (hosts is None or node not in hosts) and self._count >= _MAX_HOSTS:
                continue  # full: the hosts already known stay, a newcomer waits for room
            if hosts is None:
                hosts = self._hosts[name] = {}
            if node not in hosts:
                self._count += 1
            prior = hosts.get(node)
            hosts[node] = Host(node, load, now, float(every), now if prior is None else prior.since)
            kept.add(name)
        for entity_type in mine - kept:  # the types it no longer hosts, validly (few: its own)
            self._drop(entity_type, node)
        if kept:
            self._types_of[node] = kept
        self._changed.set()
        self._changed = asyncio.Event()

    def _drop(self, entity_type: str, node: str) -> None:
        """Forget that ``node`` hosts ``entity_type`` (the type, when it has no host left; the
        node, when it hosts nothing left)."""
        hosts = self._hosts.get(entity_type)
        if hosts is not None and hosts.pop(node, None) is not None:
            self._count -= 1
            if not hosts:
                del self._hosts[entity_type]
        types = self._types_of.get(node)
        if types is not None:
            types.discard(entity_type)
            if not types:
                del self._types_of[node]

    def live(self, entity_type: str) -> list[Host]:
        """The hosts of ``entity_type`` heard of recently enough (those silent for an hour are
        forgotten)."""
        hosts = self._hosts.get(entity_type)
        if not hosts:
            return []
        now = self._clock()
        for node in [node for node, host in hosts.items() if now - host.seen > _FORGOTTEN_AFTER]:
            self._drop(entity_type, node)
        return [host for host in hosts.values() if now - host.seen <= 3 * host.every]

    def recent(self, entity_type: str, within: float) -> list[Host]:
        """The hosts of ``entity_type`` heard of within ``within`` seconds, live or late (a busy
        host's announcements can be late; one that did not answer is not among them)."""
        now = self._clock()
        return [host for host in self._hosts.get(entity_type, {}).values() if now - host.seen <= within]

    def gone(self, entity_type: str, node: str) -> bool:
        """Whether ``node`` was a host of ``entity_type`` that has gone silent (or did not
        answer); False for a node not heard of (it may have announced before this node
        listened), or one that announced it left (see `is_live`)."""
        host = self._hosts.get(entity_type, {}).get(node)
        return host is not None and self._clock() - host.seen > 3 * host.every

    def is_live(self, entity_type: str, node: str, since: float = math.inf) -> bool:
        """Whether ``node`` hosts ``entity_type`` as far as its announcements say: heard of
        within three of its periods, and not since announcing that it left the type; and, with
        ``since``, hosting it without a leave heard from then on (a route read then is still
        its). A sender keeps a key's route to a node that is not so for a second only (see
        `Entities.route`): a departed host's route is read again at once, even if someone
        announces it again."""
        host = self._hosts.get(entity_type, {}).get(node)
        return host is not None and host.since <= since and self._clock() - host.seen <= 3 * host.every

    def forget(self, entity_type: str, node: str) -> None:
        """Mark ``node`` gone (it did not answer): its next announcement brings it back."""
        host = self._hosts.get(entity_type, {}).get(node)
        if host is not None:
            host.seen = -math.inf

    async def wait_for(self, entity_type: str, timeout: float) -> list[Host]:
        """The live hosts of ``entity_type``, waiting up to ``timeout`` seconds for one to
        announce itself; an empty list if none did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hosts = self.live(entity_type)
            remaining = deadline - loop.time()
            if hosts or remaining <= 0:
                return hosts
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return self.live(entity_type)


def announcement(node: str, every: float, loads: Mapping[str, int]) -> bytes:
    """The announcement of a hosting node (see `Hosts.heard`)."""
    body: dict[str, Any] = {"node": node, "every": every, "types": dict(loads)}
    return json.dumps(body, separators=(",", ":")).encode()
