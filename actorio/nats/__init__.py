"""Actors across processes and machines, on NATS (the ``nats`` extra: ``pip install '.[nats]'``).

- `Node`: one process's connection; ``await node.publish("greeter", actor)`` makes a local actor
  reachable under a name (several processes publishing one name form a pool);
  ``node.ref("greeter", Greeter)`` is an ``ActorRef`` to it from any process.
- `Durable`: the settings of a durable mailbox (a JetStream stream): at-least-once delivery;
  a message that keeps failing lands in the name's dead-letter stream (`StoredDeadLetter`,
  `DeliveryLimitReached`; ``node.dead_letters(name)``, ``node.replay(name)``).
- entities (virtual actors by type and key, docs/entities.md): ``await node.host(Cart)`` on the
  nodes that may run carts, ``node.entity(Cart, "alice")`` anywhere (an `EntityRef`);
  `EntityHost`, `Entities`, `Host`, `least_loaded`, `rendezvous`; persistent entities
  (``node.host(Account, journal=journal)``): `Reminders`, `EntityFenced`; the bounds of
  hosting: `HostFull` (``max_active``), `BucketFull`; `fencing_token()`, the activation's claim
  revision, for fencing its writes to other stores.
- `RemoteRef`: the reference type; `RemoteError`, `ReplyTooLarge`, `ActorNotFound`,
  `NodeUnreachable`, `NotAuthorized`: the errors.
- `NodeService`: a node answering the NATS micro protocol (``node.serve_as_service()``), each
  published actor an endpoint, so NATS tooling lists the nodes on a server.
- `LocalServer`, `find_nats_server`: a local ``nats-server``, for tests and examples.

See the NATS guide (docs/nats.md) for the subjects, the wire form and the delivery guarantees.
"""

from typing import TYPE_CHECKING

from actorio._lazy import require_nats_client

require_nats_client("actorio.nats")  # the optional dependency: checked first, for a clear error

if TYPE_CHECKING:
    from ._dead_letter_stream import DeliveryLimitReached as DeliveryLimitReached
    from ._dead_letter_stream import StoredDeadLetter as StoredDeadLetter
    from ._durable import Durable as Durable
    from ._entities import Entities as Entities
    from ._entity_host import EntityHost as EntityHost
    from ._entity_host import HostFull as HostFull
    from ._entity_persistence import EntityFenced as EntityFenced
    from ._entity_persistence import Reminders as Reminders
    from ._entity_ref import EntityRef as EntityRef
    from ._errors import ActorNotFound as ActorNotFound
    from ._errors import NodeUnreachable as NodeUnreachable
    from ._errors import NotAuthorized as NotAuthorized
    from ._errors import RemoteError as RemoteError
    from ._errors import ReplyTooLarge as ReplyTooLarge
    from ._fencing import fencing_token as fencing_token
    from ._node import Node as Node
    from ._placement import BucketFull as BucketFull
    from ._placement import Host as Host
    from ._placement import least_loaded as least_loaded
    from ._placement import rendezvous as rendezvous
    from ._publication import Publication as Publication
    from ._remote import RemoteRef as RemoteRef
    from ._server import LocalServer as LocalServer
    from ._server import find_nats_server as find_nats_server
    from ._service import NodeService as NodeService

__all__ = [
    "ActorNotFound",
    "BucketFull",
    "DeliveryLimitReached",
    "Durable",
    "Entities",
    "EntityFenced",
    "EntityHost",
    "EntityRef",
    "Host",
    "HostFull",
    "LocalServer",
    "Node",
    "NodeService",
    "NodeUnreachable",
    "NotAuthorized",
    "Publication",
    "Reminders",
    "RemoteError",
    "RemoteRef",
    "ReplyTooLarge",
    "StoredDeadLetter",
    "fencing_token",
    "find_nats_server",
    "least_loaded",
    "rendezvous",
]

# Each public name -> the module that defines it: what module __getattr__ imports. The imports
# above are the same table for type checkers; tests/test_lazy_imports.py checks that the two and
# __all__ name the same things.
_EXPORTS = {
    "ActorNotFound": "._errors",
    "NodeUnreachable": "._errors",
    "NotAuthorized": "._errors",
    "RemoteError": "._errors",
    "ReplyTooLarge": "._errors",
    "fencing_token": "._fencing",
    "Durable": "._durable",
    "DeliveryLimitReached": "._dead_letter_stream",
    "StoredDeadLetter": "._dead_letter_stream",
    "Node": "._node",
    "NodeService": "._service",
    "Entities": "._entities",
    "EntityHost": "._entity_host",
    "HostFull": "._entity_host",
    "EntityRef": "._entity_ref",
    "EntityFenced": "._entity_persistence",
    "Reminders": "._entity_persistence",
    "Host": "._placement",
    "BucketFull": "._placement",
    "least_loaded": "._placement",
    "rendezvous": "._placement",
    "Publication": "._publication",
    "RemoteRef": "._remote",
    "LocalServer": "._server",
    "find_nats_server": "._server",
}

if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any name
    from actorio._lazy import lazy_attributes

    __getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)
