"""The exceptions actorio raises.

    Exception
     +-- EndMainLoop            raised by a handler to end its actor's mainloop cleanly
     +-- ActorioException       base of every error actorio itself reports
          +-- ActorStopped      an ask reached an actor that stopped (or stops) before answering
          +-- UnhandledMessage  a message type the actor has no handler for

``EndMainLoop`` is control flow, not an error, so it is not an ``ActorioException``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ActorStopped", "ActorioException", "EndMainLoop", "UnhandledMessage"]


class EndMainLoop(Exception):
    """Raise from a handler (or an input-task handler) to stop the actor cleanly.

    The message being handled is finished, asks still queued fail with `ActorStopped`, and
    the actor's teardown runs. ``await actor`` then returns normally.
    """


class ActorioException(Exception):
    """Base class of the errors actorio raises."""


class ActorStopped(ActorioException):
    """An ask could not be answered because the actor is stopped, or stopped first.

    Raised at once at the asker: by ``ask`` on a stopped actor, and for every ask still
    queued (or held by the actor without a reply) when the actor stops.
    """

    def __init__(self, identifier: str, message: Any = None) -> None:
        self.identifier = identifier
        self.message = message
        what = f" before answering {type(message).__name__}" if message is not None else ""
        super().__init__(f"actor {identifier} stopped{what}")


class UnhandledMessage(ActorioException):
    """The actor has no handler for this message's type.

    Raised at the asker for an ask; for a told message it is logged and the actor carries on.
    """

    def __init__(self, message: Any, actor: str | None = None) -> None:
        self.message = message
        where = f" by {actor}" if actor is not None else ""
        super().__init__(f"{type(message).__name__} is not handled{where}")
