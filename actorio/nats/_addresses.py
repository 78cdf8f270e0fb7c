"""Sender addresses: how a local actor travels as a message's sender, and how a sender comes back.

Owns:

- a local actor's address on this node, ``<prefix>.node.<node id>.<token>``: made the first time
  the actor travels as a sender, kept in the export table, and forgotten (death watch) when the
  actor stops for good; a supervised child's address outlives its restarts, as its reference does;
- receiving on an exported address: a message to it goes to the actor running behind it now;
- resolving an incoming ``Actorio-Sender`` header into a `RemoteRef`, so that the handler's
  ``await message.sender.tell(...)`` reaches the sender wherever it runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import NO_SENDER, Actor, ActorRef, BaseRef, Message, dead_letters
from ..lowlevel import Mailbox, actor_of, mailbox_of, unwatch, watch
from ._codec import ERROR, SENDER
from ._remote import RemoteRef

if TYPE_CHECKING:
    from ._outbox import Outbox

__all__ = ["Addresses", "sender_of"]


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

    def __init__(self, nc: Client, *, prefix: str, node_id: str) -> None:
        self._nc = nc
        self._prefix = prefix
        self._node_id = node_id
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
            return f"{self._prefix}.node.{self._node_id}.{forget.token}"
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
            if msg.reply:
                body = json.dumps({"kind": "stopped", "message": "the actor is gone"}).encode()
                await self._nc.publish(msg.reply, body, headers=ERROR)
            else:
                dead_letters.record(msg.data, msg.subject, "stopped")
            return
        await deliver(actor, msg)


def sender_of(outbox: Outbox, headers: Mapping[str, str] | None) -> RemoteRef[Any] | None:
    """The sender an incoming message names in its ``Actorio-Sender`` header, as a reference that
    sends through ``outbox`` (the receiving node's); ``None`` without one."""
    address = headers.get(SENDER) if headers else None
    return RemoteRef(outbox, address, address, None) if address else None
