"""`EntityRef`: the reference to an entity (a type and a key), an ``ActorRef`` of its protocol.

It owns nothing but the checks of an ``ActorRef`` (the message types, at the call); its node's
`Entities` routes and sends what it is told (``_entities``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast, overload

from typing_extensions import TypeVar

from .. import NO_REPLY, ActorRef, Message, NoReply
from ..lowlevel import MailboxLike, Member, Payload, Request, check_accepted, transport_operation
from ._codec import encode_message, payload_bytes, read_reply

if TYPE_CHECKING:
    from ._entities import Entities

__all__ = ["EntityRef"]

M = TypeVar("M", bound=Message[Any])
N = TypeVar("N", bound=Message[Any])
R = TypeVar("R")
P = TypeVar("P", bound=Message[Any], contravariant=True, default=Message[Any])


class EntityRef(ActorRef[P]):
    """The reference to an entity: a type and a key, wherever (and whether) it is active.

    It is an `ActorRef` of the type's protocol; what it does:

    - ``tell`` and ``tell_nowait``: at most once. The message goes to the node holding the key,
      or to the one chosen for it (which activates the entity first). Messages told through one
      node to one key arrive in order while the entity stays on one node; a message in flight
      when the entity moves (its node died, its lease was lost, it was passivated) may be lost,
      or handled after a later one. ``tell`` raises `ActorNotFound` if no node hosts the type.
    - ``ask``: the reply, validated; routed again (within ``timeout``) when the node it reached
      no longer holds the key or has gone: an ask made while the key's node is dead is answered
      once its lease expired and the entity is active elsewhere. Errors as for `RemoteRef`.
    - the key is checked when the reference is made (see ``check_key``).

    Two references are equal when they name the same type and key through the same node.
    """

    __slots__ = ("_entities", "_type", "_key")

    def __init__(
        self, entities: Entities, entity_type: str, key: str, protocol: tuple[type, ...] | None
    ) -> None:
        super().__init__(cast(MailboxLike, None), protocol)  # no local mailbox: see RemoteRef
        self._entities = entities
        self._type = entity_type
        self._key = key

    @property
    def identifier(self) -> str:
        """``<type>/<key>``."""
        return f"{self._type}/{self._key}"

    @property
    def entity_type(self) -> str:
        """The entity type's name."""
        return self._type

    @property
    def key(self) -> str:
        """The entity's key."""
        return self._key

    def narrow(self: ActorRef[M], message_type: type[Member[M, N]], /) -> ActorRef[N]:
        """A reference to the same entity that accepts only ``message_type``."""
        narrowed = ActorRef.narrow(cast(Any, self), message_type)
        assert isinstance(self, EntityRef)
        return EntityRef(self._entities, self._type, self._key, narrowed.message_types)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EntityRef)
            and other._entities is self._entities
            and other._type == self._type
            and other._key == self._key
        )

    def __hash__(self) -> int:
        return hash((id(self._entities), self._type, self._key))

    def tell_nowait(self, message: P, /) -> None:
        """Queue ``message`` and return at once; this node sends it after the calls queued
        before it for the entity's type (a queue per type: another type's wait does not hold it
        up). Errors are logged (within a limit)."""
        check_accepted(self, message)
        self._entities.tell_nowait(self, message)

    async def tell(self, message: P, /) -> None:
        """Send ``message`` (see the class docstring)."""
        check_accepted(self, message)
        await self._entities.tell(self, message)

    async def forward(self, message: P, /) -> NoReply:
        """Tell ``message`` with its sender; if it carries an ask, the entity answers it."""
        await self.tell(message)
        return NO_REPLY

    @overload
    async def ask(
        self: ActorRef[Message[Any]], message: Message[Any], timeout: float | None = None
    ) -> Any: ...
    @overload
    async def ask(self: ActorRef[M], message: Request[M, R], timeout: float | None = None) -> R: ...
    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Ask the entity; the validated reply (see the class docstring)."""
        check_accepted(self, message)
        return await self._asked(encode_message(message), message, timeout)

    async def tell_payload(self, payload: Payload, /) -> None:
        """Send a raw wire payload as it is: the entity's protocol validates it where it lands."""
        await self._entities.tell_payload(self, payload_bytes(payload))

    async def ask_payload(self, payload: Payload, /, timeout: float | None = None) -> Any:
        """Ask with a raw wire payload; the reply as JSON-decoded data."""
        return await self._asked(payload_bytes(payload), None, timeout)

    async def _asked(self, body: bytes, message: Message[Any] | None, timeout: float | None) -> Any:
        """Ask with ``body``: the reply, read against ``message``'s reply type (``None``: as
        JSON-decoded data)."""
        with transport_operation("nats", "ask", self.identifier, self.entity_type):
            reply = await self._entities.request(self, body, timeout)
            return read_reply(self.identifier, reply.headers, reply.data, message)

    def __repr__(self) -> str:
        return f"<EntityRef {self.identifier}>"
