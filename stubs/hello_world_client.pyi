"""Typed client of the actors of `hello_world`: Greeter.

Generated from hello_world by `python -m actorio stubs`: do not edit, regenerate. It declares the
messages these actors accept and reply with, and a reference type per actor, so that code holding a
reference is type-checked against the actor's protocol without importing hello_world.
"""

from typing import TypeAlias

from actorio import ActorRef, Message

class Greeting(Message[None]):
    """Wire name: "Greeting". Reply: None."""

    text: str

class Greet(Message[Greeting]):
    """Wire name: "Greet". Reply: Greeting."""

    name: str

class Stop(Message[None]):
    """Wire name: "Stop". Reply: None."""

GreeterProtocol: TypeAlias = Greet | Stop
"""The messages Greeter accepts."""

GreeterRef: TypeAlias = ActorRef[Greet | Stop]
"""A reference to hello_world.Greeter."""
