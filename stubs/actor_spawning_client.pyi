"""Typed client of the actors of `actor_spawning`: Worker, Manager.

Generated from actor_spawning by `python -m actorio stubs`: do not edit, regenerate. It declares the
messages these actors accept and reply with, and a reference type per actor, so that code holding a
reference is type-checked against the actor's protocol without importing actor_spawning.
"""

from typing import TypeAlias

from actorio import ActorRef, Message

class Result(Message[None]):
    """Wire name: "Result". Reply: None."""

    value: int

class Compute(Message[Result]):
    """Wire name: "Compute". Reply: Result."""

WorkerProtocol: TypeAlias = Compute
"""The messages Worker accepts."""

WorkerRef: TypeAlias = ActorRef[Compute]
"""A reference to actor_spawning.Worker."""

ManagerProtocol: TypeAlias = Compute
"""The messages Manager accepts."""

ManagerRef: TypeAlias = ActorRef[Compute]
"""A reference to actor_spawning.Manager."""
