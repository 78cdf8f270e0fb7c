"""`NodeEntities`: what `Node` offers of entities (a base of `Node`): ``node.host``,
``node.entity`` and ``node.entities``. The routing and hosting are `Entities`' (``_entities``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast, overload

from nats.aio.client import Client
from typing_extensions import TypeVar

from .. import Actor, ActorRef, Message, SupervisorStrategy
from ._addresses import Addresses
from ._durable import Durable
from ._durable_entities import DurableSending
from ._entities import Entities
from ._entity_host import MAX_ACTIVE, EntityHost
from ._entity_ref import EntityRef
from ._publication import Receiver

if TYPE_CHECKING:
    from actorio.persistence import Journal

    from ._codec import StoredAsk
    from ._durable import Streams

__all__ = ["NodeEntities"]

Q = TypeVar("Q", bound=Message[Any])


class NodeEntities:
    """`Node`'s entity methods (a base of `Node`): ``host``, ``entity`` and ``entities``."""

    if TYPE_CHECKING:  # what Node has
        _nc: Client
        _receiver: Receiver
        _addresses: Addresses
        _closed: bool
        _entities: Entities | None
        _streams: Streams
        _replies: dict[str, StoredAsk]
        prefix: str
        node_id: str
        ask_timeout: float

        def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]: ...

    @property
    def entities(self) -> Entities:
        """This node's entities: the types it hosts (``hosted``), the hosts it knows of
        (``hosts``), and ``placement``, how a node is chosen for a key nobody holds."""
        if self._entities is None:
            self._entities = Entities(
                self._nc,
                self._nc.jetstream(),  # pyright: ignore[reportUnknownMemberType]
                prefix=self.prefix,
                node_id=self.node_id,
                receiver=self._receiver,
                addresses=self._addresses,
                spawn=self._spawn,
                ask_timeout=self.ask_timeout,
            )
            self._entities.mailboxes = DurableSending(
                self._entities, streams=self._streams, replies=self._replies, receiver=self._receiver
            )
        return self._entities

    async def host(
        self,
        entity_type: type[Actor[Any]] | Callable[[str], Actor[Any]],
        *,
        name: str | None = None,
        idle_timeout: float = 300.0,
        lease: float = 10.0,
        guard: float | None = None,
        supervision: SupervisorStrategy | None = None,
        journal: Journal | None = None,
        durable: Durable | bool = False,
        max_active: int | None = MAX_ACTIVE,
    ) -> EntityHost:
        """Host the entity type ``entity_type``: an actor class made from a key (``Cart(key)``),
        or a factory of a key (then ``name`` is needed). This node may now activate the type's
        entities, each on the first message to a key nobody holds. Returns once it receives.

        ``name``: the type's name, the same on every node (default: the class's ``__name__``).
        Each activation holds a lease on its key in the type's key-value bucket, whose TTL is
        ``lease`` seconds (every host of a type uses the same); it is renewed every
        ``(lease - guard) / 3`` seconds, and the activation acts only until ``guard`` seconds
        before its lease could expire (default ``lease / 4``): see docs/entities.md for the
        exact guarantee. An entity that handled nothing for ``idle_timeout`` seconds is
        passivated: stopped (its teardown runs; its in-memory state is lost) and its key
        released. A failing entity is supervised as a published factory is (``supervision``:
        see `Node.publish`); one whose supervision gives up is passivated.

        ``max_active``: at most this many activations of the type on this node at once (default
        100,000; None: no bound). When a key must be activated and the node is full, the least
        recently used idle activation (waiting for a message, not in a handler) is passivated
        first, as an idle one is; if none is idle, the new key's messages are refused at once:
        an ask raises a `RemoteError` named ``HostFull``, a tell is a dead letter
        (``overflow``). See docs/entities.md, "A bound on activations".

        ``journal``: the type is persistent (an ``EventSourcedActor`` or ``DurableStateActor``):
        each activation recovers its state from ``journal`` (made as ``Cls(key, journal,
        clock=host.reminders.clock)``; a factory makes its actors itself, on that journal), its
        writes are refused (`EntityFenced`) once its lease is over, and its durable reminders
        fire after a passivation or a crash by activating the key on a hosting node (see
        docs/entities.md, "State"). The key is the entity id, so it must also be a
        valid one (no ``=``).

        ``durable`` (``True`` or a `Durable`): a JetStream mailbox per type. A tell returns once
        stored; each message is acknowledged after its handler ran, delivered again to the key's
        next owner if its host dies first, in per-key order; failing ones follow the durable
        rules (``max_deliver``, ``retry_backoff``, a dead-letter stream). Every host of a type
        hosts it durably, or none does. See docs/entities.md, "Durable entity types".

        Raises ``ValueError`` for an invalid name or settings, a type hosted already, a lease
        other than the bucket's, or a type hosted durably elsewhere hosted without ``durable``;
        ``TypeError`` for ``journal`` with a class that is not persistent; ``RuntimeError`` for
        a closed node, or ``durable`` on a server without JetStream.
        """
        if self._closed:
            raise RuntimeError("the node is closed")
        if name is None:
            if not isinstance(entity_type, type):
                raise ValueError("host() of a factory needs name=")
            name = entity_type.__name__
        if not callable(entity_type):
            raise TypeError(f"host() takes an actor class or a factory of a key, not {entity_type!r}")
        factory = cast("Callable[[str], Actor[Any]]", entity_type)
        made_on_journal = journal is not None and isinstance(entity_type, type)
        if made_on_journal and not hasattr(entity_type, "remind"):
            raise TypeError(f"host(journal=...) takes a persistent actor class, not {entity_type!r}")
        settings = Durable() if durable is True else (durable or None)
        return await self.entities.host(
            name,
            factory,
            idle_timeout=idle_timeout,
            lease=lease,
            guard=guard,
            supervision=supervision,
            journal=journal,
            made_on_journal=made_on_journal,
            durable=settings,
            max_active=max_active,
        )

    @overload
    def entity(self, entity_type: type[Actor[Q]], key: str) -> EntityRef[Q]: ...
    @overload
    def entity(self, entity_type: str, key: str, protocol: type[Actor[Q]]) -> EntityRef[Q]: ...
    @overload
    def entity(self, entity_type: str, key: str, protocol: type[ActorRef[Q]]) -> EntityRef[Q]: ...
    @overload
    def entity(self, entity_type: str, key: str, protocol: None = None) -> EntityRef[Message[Any]]: ...
    def entity(self, entity_type: Any, key: str, protocol: Any = None) -> EntityRef[Any]:
        """A reference to the entity ``key`` of a type hosted by any node: by its class
        (``node.entity(Cart, "alice")``: the type named after the class), or by its name and
        protocol (``node.entity("Cart", "alice", Cart)``; without a protocol, any message).
        Statically an ``ActorRef`` of the class's protocol. Nothing is sent until it is told or
        asked.

        Raises ``ValueError`` for an invalid type name or key (a key is 1 to 128 letters, digits,
        ``_``, ``-`` or ``=``), ``TypeError`` for a key that is not a string or an invalid
        protocol."""
        # Node's reading of a protocol argument, as for node.ref (that module imports this one).
        from ._node import _protocol_members  # pyright: ignore[reportPrivateUsage]

        if isinstance(entity_type, type):
            protocol, entity_type = entity_type, entity_type.__name__
        return self.entities.ref(entity_type, key, _protocol_members(protocol))
