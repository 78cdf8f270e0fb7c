"""The exceptions actorio raises.

    Exception
     +-- EndMainLoop            raised by a handler to end its actor's mainloop cleanly
     +-- ActorioException       base of every error actorio itself reports
          +-- ActorStopped      an ask reached an actor that stopped (or stops) before answering
          +-- UnhandledMessage  a message type the actor has no handler for
          +-- InvalidPayload    a wire payload that the actor's protocol does not accept
          +-- MailboxFull       tell_nowait to a bounded mailbox that is full
          +-- RestartIntensityExceeded
                                a supervisor saw more restarts than its strategy allows
          +-- DeadlockError     an ask that could never be answered (an actor asked itself)

``EndMainLoop`` is control flow, not an error, so it is not an ``ActorioException``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "ActorStopped",
    "ActorioException",
    "DeadlockError",
    "EndMainLoop",
    "InvalidPayload",
    "MailboxFull",
    "PayloadError",
    "RestartIntensityExceeded",
    "UnhandledMessage",
]


class EndMainLoop(Exception):
    """Raise from a handler (or an input-task handler) to stop the actor cleanly.

    The message being handled is finished, asks still queued fail with `ActorStopped`, and
    the actor's teardown runs. ``await actor`` then returns normally.
    """


class ActorioException(Exception):
    """Base class of the errors actorio raises."""


class DeadlockError(ActorioException, RuntimeError):
    """An ask that could never be answered, raised at once instead of waiting for a timeout.

    An actor handles one message at a time: if its own handler asks it (``await self.ask(...)``,
    or through its reference), the ask waits for a handler that waits for the ask. Tell yourself
    instead, or call the method directly. (A cycle through other actors, A asking B while B asks
    A, is not detected: give such asks a timeout.)
    """

    def __init__(self, identifier: str, message: Any) -> None:
        self.identifier = identifier
        self.message = message
        super().__init__(
            f"actor {identifier} asked itself {type(message).__name__} from its own handler: the ask "
            "could never be answered (it handles one message at a time); tell yourself, or call the "
            "method directly"
        )


class ActorStopped(ActorioException):
    """An ask could not be answered because the actor is stopped, or stopped first.

    Raised at once at the asker: by ``ask`` on a stopped actor, and for every ask still
    queued (or held by the actor without a reply) when the actor stops.

    ``reason`` is why the actor stopped, if it failed (the exception its mainloop ended with, a
    failed recovery for instance), else ``None``; it is also the exception's ``__cause__``, so a
    traceback of the asker's error shows it. The message text does not include it (it may
    cross the wire to a remote asker).
    """

    def __init__(self, identifier: str, message: Any = None, reason: BaseException | None = None) -> None:
        self.identifier = identifier
        self.message = message
        self.reason = reason
        what = f" before answering {type(message).__name__}" if message is not None else ""
        super().__init__(f"actor {identifier} stopped{what}")
        if reason is not None:
            self.__cause__ = reason


class UnhandledMessage(ActorioException):
    """The actor has no handler for this message's type.

    Raised at the asker for an ask; for a told message it is logged and the actor carries on.
    """

    def __init__(self, message: Any, actor: str | None = None) -> None:
        self.message = message
        where = f" by {actor}" if actor is not None else ""
        super().__init__(f"{type(message).__name__} is not handled{where}")


class PayloadError(NamedTuple):
    """One problem with a wire payload: where it is, what it is, and its kind.

    ``location`` is the path from the payload's top level, e.g. ``("data", "name")``; it is empty
    for a problem with the payload as a whole (malformed JSON, not a JSON object). ``kind`` is a
    stable, machine-readable name: pydantic's error type (``missing``, ``extra_forbidden``,
    ``string_type``, ...) or one of actorio's: ``unknown_type``, ``missing_type``, ``invalid_json``,
    ``not_an_object``, ``invalid_id``.
    """

    location: tuple[str | int, ...]
    message: str
    kind: str

    @property
    def path(self) -> str:
        """``location`` as a dotted path (``data.items.0``), or ``""`` for the whole payload."""
        return ".".join(str(part) for part in self.location)


class InvalidPayload(ActorioException):
    """A wire payload that an actor's protocol does not accept.

    Raised by ``Actor.protocol.validate`` (and so by ``ActorRef.tell_payload`` and ``ask_payload``,
    before anything is queued) for an unknown message type, a missing, extra or invalid field,
    malformed JSON, or a payload that is not a JSON object. It carries:

    - ``errors``: every problem found, as `PayloadError` records (path, message, kind);
    - ``accepted``: the wire names the protocol accepts;
    - ``actor``: the name of the actor class whose protocol refused it;
    - ``id``: the payload's ``"id"`` correlation field, if it could be read, else ``None``.
    """

    def __init__(
        self,
        actor: str,
        errors: tuple[PayloadError, ...],
        accepted: tuple[str, ...],
        id: str | int | None = None,
    ) -> None:
        self.actor = actor
        self.errors = errors
        self.accepted = accepted
        self.id = id
        problems = "; ".join(f"{error.path or 'payload'}: {error.message}" for error in errors)
        names = ", ".join(accepted) if accepted else "none"
        super().__init__(f"invalid payload for {actor}: {problems} (accepted types: {names})")

    @property
    def paths(self) -> tuple[str, ...]:
        """The dotted path of each problem (``""`` for the payload as a whole)."""
        return tuple(error.path for error in self.errors)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, e.g. for an error frame: ``message``, ``errors`` (each with
        ``path``, ``message`` and ``kind``) and ``accepted``."""
        return {
            "message": str(self),
            "errors": [{"path": e.path, "message": e.message, "kind": e.kind} for e in self.errors],
            "accepted": list(self.accepted),
        }


class MailboxFull(ActorioException):
    """``tell_nowait`` (or `Mailbox.put`) found the actor's bounded mailbox full; nothing was queued.

    ``await ref.tell(...)`` and ``ask`` wait for room instead.
    """

    def __init__(self, identifier: str, capacity: int) -> None:
        self.identifier = identifier
        self.capacity = capacity
        super().__init__(f"the mailbox of {identifier} is full ({capacity} messages queued)")


class RestartIntensityExceeded(ActorioException):
    """A supervisor's children needed more than ``max_restarts`` restarts within ``within`` seconds.

    The supervisor stopped its children (in reverse start order) and failed with this error, so
    that its own parent decides; ``__cause__`` is the child's failure that went over the limit.
    """

    def __init__(self, identifier: str, max_restarts: int, within: float) -> None:
        self.identifier = identifier
        self.max_restarts = max_restarts
        self.within = within
        super().__init__(
            f"{identifier}: more than {max_restarts} child restarts within {within:g} s; giving up"
        )
