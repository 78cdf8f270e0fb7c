"""Sender addresses: how a local actor travels as a message's sender, and how a sender comes back.

Owns:

- a local actor's address on this node, ``<prefix>.node.<node id>.<token>``: made the first time
  the actor travels as a sender, kept in the export table, and forgotten (death watch) when the
  actor stops for good; a supervised child's address outlives its restarts, as its reference does;
- receiving on an exported address: a message to it goes to the actor running behind it now;
- resolving an incoming ``Actorio-Sender`` header into a `RemoteRef`, so that the handler's
  ``await message.sender.tell(...)`` reaches the sender wherever it runs;
- `Destinations`: the one rule for every subject this node publishes to on behalf of a message it
  received (a request's reply subject, an ``Actorio-Sender`` header, a stored ``Actorio-Reply``
  header): what arrives from the wire is chosen by whoever sent it, so it is never used as given.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import NO_SENDER, Actor, ActorRef, BaseRef, Message, PayloadError, dead_letters
from ..lowlevel import Mailbox, actor_of, mailbox_of, unwatch, watch
from ._batch import tells_of
from ._codec import ERROR, SENDER
from ._remote import RemoteRef

if TYPE_CHECKING:
    from ._outbox import Outbox

__all__ = [
    "MAX_SUBJECT_CHARS",
    "Addresses",
    "Destinations",
    "check_name",
    "check_subject_prefix",
    "sender_of",
]

MAX_SUBJECT_CHARS = 256
"""The longest subject this node publishes to on behalf of a message."""

_BAD_CHARACTER = re.compile(r"[^\x21-\x7e]|[*>]")
"""Anything but printable ASCII (spaces and control characters included), and the wildcards."""


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` is not a plain subject to publish to, or ``None`` if it is one: printable
    ASCII, no wildcard (``*``, ``>``), no empty token, at most `MAX_SUBJECT_CHARS` characters."""
    if not subject:
        return "it is empty"
    if len(subject) > MAX_SUBJECT_CHARS:
        return f"it is longer than {MAX_SUBJECT_CHARS} characters"
    bad = _BAD_CHARACTER.search(subject)
    if bad is not None:
        return f"it contains {bad.group()!r} (a subject is printable ASCII, without wildcards)"
    if "" in subject.split("."):
        return "it has an empty token"
    return None


_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def check_name(name: object) -> str:
    """A published name: dot-separated tokens of letters, digits, ``_`` and ``-`` (``ValueError``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid actor name {name!r}: use dot-separated tokens of letters, digits, '_' and '-'"
        )
    return name


def check_subject_prefix(prefix: object) -> str:
    """A subject prefix that replies may be sent under (``billing`` or ``billing.``), returned with
    its trailing dot. Raises ``ValueError`` for one that is not a plain subject, or starts with
    ``$`` (the server's own subjects: JetStream, KV, object store, system, services)."""
    if not isinstance(prefix, str):
        raise ValueError(f"a reply prefix is a string, not {type(prefix).__name__}")
    bare = prefix[:-1] if prefix.endswith(".") else prefix
    problem = subject_problem(bare)
    if problem is None and bare.startswith("$"):
        problem = "it starts with '$' (the server's own subjects)"
    if problem is not None:
        raise ValueError(f"invalid reply prefix {prefix!r}: {problem}")
    return bare + "."


RESERVED_SPACES = ("events", "entities", "dlq", "mailbox")
"""The subject spaces under a node's prefix that no reply or sender address may name: a JetStream
journal's events (``<prefix>.events.<type>.<id>``), the entity hosts' announcements and probes
(``<prefix>.entities.hosts``, ``.probe``), the dead-letter streams (``<prefix>.dlq.<name>``: a
reply stored there would push real dead letters out) and the durable entity types' mailboxes
(``<prefix>.mailbox.<type>.<shard>.<key>``: a reply stored there would be delivered as a
message). A client without the right to publish there must not get a node to do it for it."""


class Destinations:
    """The subjects this node publishes to on behalf of a message it received: a request's reply
    subject, the address in an ``Actorio-Sender`` header, and a stored ``Actorio-Reply`` header.

    One rule for all of them: a plain subject (see `subject_problem`), never one starting with
    ``$``, under one of ``prefixes``: the client's reply inboxes (``_INBOX.``), this node's own
    prefix (``actorio.``), and those the node was connected with (``reply_prefixes``), and under
    none of ``reserved``: the subjects under the node's prefix that hold stored or control data
    (`RESERVED_SPACES`: a journal's events, the entity hosts' announcements, the dead-letter
    streams and the durable entity mailboxes). Anything else was chosen by whoever sent the
    message: publishing there would make this node act for them (delete a stream through
    ``$JS.API...``, append to a journal or a dead-letter stream, send to another service's
    subjects).
    """

    def __init__(self, prefixes: Iterable[str], reserved: Iterable[str] = ()) -> None:
        self.prefixes = tuple(dict.fromkeys(check_subject_prefix(prefix) for prefix in prefixes))
        """The allowed prefixes, each ending with a dot."""
        self.reserved = tuple(dict.fromkeys(check_subject_prefix(prefix) for prefix in reserved))
        """The refused prefixes inside the allowed ones, each ending with a dot."""

    def refusal(self, subject: str) -> str | None:
        """Why this node does not publish to ``subject`` on behalf of a message, or ``None``."""
        problem = subject_problem(subject)
        if problem is not None:
            return f"not a valid subject: {problem}"
        if subject.startswith("$"):
            return "a subject starting with '$' is the server's own"
        for prefix in self.reserved:
            if subject.startswith(prefix):
                return f"{prefix}* holds stored or control data"
        for prefix in self.prefixes:
            if subject.startswith(prefix):
                return None
        allowed = ", ".join(f"{prefix}*" for prefix in self.prefixes)
        return f"not under a prefix this node replies to ({allowed})"

    def problem(self, subject: str, location: tuple[str, ...]) -> PayloadError | None:
        """`refusal` as a payload problem at ``location`` (for an `InvalidPayload`), or ``None``."""
        why = self.refusal(subject)
        if why is None:
            return None
        shown = subject if len(subject) <= 80 else f"{subject[:80]}... ({len(subject)} characters)"
        return PayloadError(location, f"{shown!r} is refused as an address: {why}", "refused_address")


class Forget(BaseRef):
    """Death watch on an actor whose address travelled as a sender: forget the address when it
    stops for good."""

    __slots__ = ("addresses", "mailbox", "reference", "token")

    def __init__(self, addresses: Addresses, mailbox: Mailbox, reference: ActorRef[Any], token: str) -> None:
        self.addresses = addresses
        self.mailbox = mailbox
        self.reference = reference
        self.token = token

    @property
    def identifier(self) -> str:
        return f"address-{self.token}"

    def tell_nowait(self, message: Any, /) -> None:
        self.addresses.forget(self)


class Addresses:
    """The addresses of this node's local actors that travelled as senders (the export table)."""

    def __init__(self, nc: Client, *, prefix: str, node_id: str, reply_prefixes: Iterable[str] = ()) -> None:
        self._nc = nc
        self.prefix = prefix
        """The node's subject prefix (``actorio``): its actors' addresses are under it."""
        self._node_id = node_id
        # The reply inboxes: NATS's usual ``_INBOX`` (where other clients' asks, each user with
        # an inbox prefix of its own under it, await their replies) and this client's own prefix.
        own = nc.new_inbox().rsplit(".", 1)[0]
        inboxes = ["_INBOX"] if own == "_INBOX" or own.startswith("_INBOX.") else ["_INBOX", own]
        reserved = [f"{prefix}.{space}" for space in RESERVED_SPACES]
        self.destinations = Destinations([*inboxes, prefix, *reply_prefixes], reserved)
        """The rule for the subjects this node publishes to on behalf of a message."""
        self.exported: dict[Mailbox, Forget] = {}
        """The death watch of each exported actor, by its mailbox (one per supervised child)."""
        self.exports: dict[str, ActorRef[Any]] = {}
        """The reference of each exported actor, by the token of its address."""

    def headers(self, message: Message[Any]) -> dict[str, str] | None:
        """The headers a message travels with: its sender's address, if it has a sender."""
        sender = message.sender
        if sender is NO_SENDER or not sender:
            return None
        return {SENDER: self.address_of(sender)}

    def address_of(self, sender: object) -> str:
        """The address a sender travels as: a remote reference's subject, or a local actor's address
        on this node (made on first use, forgotten when the actor stops for good)."""
        if isinstance(sender, RemoteRef):
            return sender.subject
        if isinstance(sender, ActorRef):
            cell = mailbox_of(cast(object, sender))
            if cell is None:
                raise TypeError(f"{sender!r} has no local actor: it cannot travel as a sender")
            forget = self.exported.get(cell)
            if forget is None:
                reference: ActorRef[Any] = cell.actor.reference
                forget = self.exported[cell] = Forget(self, cell, reference, uuid.uuid4().hex)
                self.exports[forget.token] = reference
                # Forgotten when the actor stops for good (death watch); a supervised child's
                # address outlives its restarts, as its reference does.
                watch(reference, forget)
            return f"{self.prefix}.node.{self._node_id}.{forget.token}"
        raise TypeError(
            f"a {type(sender).__name__} cannot travel as a sender to another process: "
            "only an actor (or a remote reference) can"
        )

    def forget(self, forget: Forget) -> None:
        """Drop an exported address (its actor stopped for good)."""
        self.exported.pop(forget.mailbox, None)
        self.exports.pop(forget.token, None)

    def forget_all(self) -> None:
        """Drop every exported address, and stop watching the actors (they outlive the node)."""
        exported, self.exported = self.exported, {}
        for forget in exported.values():
            unwatch(forget.reference, forget)
        self.exports.clear()

    async def receive(self, msg: Msg, deliver: Callable[[Actor[Any], Msg], Awaitable[None]]) -> None:
        """A message to an exported address: ``deliver`` it to the actor behind it; if that actor is
        gone, an ask is answered with `ActorStopped` and a tell is a dead letter."""
        reference = self.exports.get(msg.subject.rsplit(".", 1)[-1])
        actor = actor_of(reference) if reference is not None else None
        if actor is None:
            if msg.reply and self.destinations.refusal(msg.reply) is None:
                body = json.dumps({"kind": "stopped", "type": "ActorStopped", "message": "the actor is gone"})
                await self._nc.publish(msg.reply, body.encode(), headers=ERROR)
            else:
                for data in tells_of(msg.data, msg.headers):
                    dead_letters.record(data, msg.subject, "stopped")
            return
        await deliver(actor, msg)


def sender_of(outbox: Outbox, headers: Mapping[str, str] | None) -> RemoteRef[Any] | None:
    """The sender an incoming message names in its ``Actorio-Sender`` header, as a reference that
    sends through ``outbox`` (the receiving node's); ``None`` without one. The header must have
    passed `Destinations` (see ``Receiver.validate``)."""
    address = headers.get(SENDER) if headers else None
    if address is None:
        return None
    # A node's address has one subscriber, never a pool: what is told to it may leave in batches.
    return RemoteRef(outbox, address, address, None, batch=address.startswith(outbox.node_addresses))
