"""Typed client of the actors of `websocket_json`: Session.

Generated from websocket_json by `python -m actorio stubs`: do not edit, regenerate. It declares the
messages these actors accept and reply with, and a reference type per actor, so that code holding a
reference is type-checked against the actor's protocol without importing websocket_json.
"""

from typing import ClassVar, TypeAlias

from actorio import ActorRef, Message

class Echoed(Message[None]):
    """Wire name: "echoed". Reply: None."""

    wire_name: ClassVar[str] = "echoed"
    text: str

class Echo(Message[Echoed]):
    """Wire name: "echo". Reply: Echoed."""

    wire_name: ClassVar[str] = "echo"
    text: str

class Total(Message[None]):
    """Wire name: "total". Reply: None."""

    wire_name: ClassVar[str] = "total"
    value: int

class Add(Message[Total]):
    """Wire name: "add". Reply: Total."""

    wire_name: ClassVar[str] = "add"
    value: int

class Close(Message[None]):
    """Wire name: "close". Reply: None."""

    wire_name: ClassVar[str] = "close"

SessionProtocol: TypeAlias = Echo | Add | Close
"""The messages Session accepts."""

SessionRef: TypeAlias = ActorRef[Echo | Add | Close]
"""A reference to websocket_json.Session."""
