"""What a message's ``sender`` can be: anything that can be told a message.

`BaseRef` is the root of every reference actorio hands out (an actor's `ActorRef`, a plain
`Reference` inbox, the one-shot reference made for each ask, and `NO_SENDER`). `Sender` is the
static type of ``message.sender``: a protocol that an actor satisfies too, since a message
accepts an actor as its sender and stores the actor's reference instead.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._dead_letters import dead_letters

__all__ = ["NO_SENDER", "BaseRef", "Sender"]


class Sender(Protocol):
    """Something a message can be told to: an actor, or any actorio reference."""

    @property
    def identifier(self) -> str:
        """A name for logs and errors."""
        ...

    async def tell(self, message: Any, /) -> None:
        """Deliver ``message``; see the concrete reference for what that means."""
        ...

    def tell_nowait(self, message: Any, /) -> None:
        """Deliver ``message`` without waiting."""
        ...


class BaseRef:
    """Base class of actorio's references: an address that messages can be told to.

    Subclasses implement `tell_nowait`; `tell` calls it. A reference is truthy, except
    `NO_SENDER`.
    """

    __slots__ = ()

    @property
    def identifier(self) -> str:
        """A name for logs and errors."""
        raise NotImplementedError

    async def tell(self, message: Any, /) -> None:
        """Deliver ``message``."""
        self.tell_nowait(message)

    def tell_nowait(self, message: Any, /) -> None:
        """Deliver ``message`` without waiting."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier}>"


class _NoSender(BaseRef):
    """The sender of a message created without one: what it is told is a dead letter."""

    __slots__ = ()

    @property
    def identifier(self) -> str:
        return "no-sender"

    def tell_nowait(self, message: Any, /) -> None:
        dead_letters.record(message, self.identifier, "no-sender")

    def __bool__(self) -> bool:
        return False


NO_SENDER: BaseRef = _NoSender()
"""The ``sender`` of a message created without one. Falsy; what it is told is a dead letter."""
