"""The ``@handles`` decorator and the per-class dispatch table.

At class creation, each actor class gets:

- ``_actor_handlers``: message type -> handler function, merged down the class's MRO;
- ``_actor_dispatch``: a cache of message class -> handler, filled on the first message of each
  class by walking that message class's MRO (the nearest handled base wins), with the class's
  ``handle_message`` as the fallback. After the first message of a class, dispatch is one dict
  lookup.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ._message import Message

__all__ = ["HANDLES_ATTRIBUTE", "build_handler_table", "handles", "resolve_handler"]

HANDLES_ATTRIBUTE = "__actorio_handles__"

M = TypeVar("M", bound=Message[Any])
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
Handler = Callable[[Any, Any], Awaitable[Any]]


def _is_async(function: object) -> bool:
    # A plain bool: inspect's TypeGuard would narrow a decorated handler's type away.
    return inspect.iscoroutinefunction(function)


class handles(Generic[M]):  # noqa: N801 - reads as a decorator: @handles(Greet)
    """Declare the message types an actor method handles: ``@handles(Greet, Hello)``.

    The method must be ``async def``; it is called with each message of those types (or of their
    subclasses that have no nearer handler), one at a time. Its return value is the reply to an
    ask, unless it told the message's sender something first or handed the message on.
    Decorating a method twice adds the types of both.
    """

    __slots__ = ("message_types",)

    def __init__(self, *message_types: type[M]) -> None:
        if not message_types:
            raise TypeError("@handles() needs at least one message type")
        for message_type in message_types:
            if not (isinstance(message_type, type) and issubclass(message_type, Message)):
                raise TypeError(f"@handles() takes Message subclasses, not {message_type!r}")
        self.message_types: tuple[type[M], ...] = message_types

    def __call__(self, handler: H) -> H:
        if not _is_async(handler):
            name = getattr(handler, "__qualname__", repr(handler))
            raise TypeError(f"@handles({self._names()}): {name} must be an `async def` method")
        declared: tuple[type[Message[Any]], ...] = getattr(handler, HANDLES_ATTRIBUTE, ())
        setattr(handler, HANDLES_ATTRIBUTE, declared + self.message_types)
        return handler

    def _names(self) -> str:
        return ", ".join(t.__name__ for t in self.message_types)


def _own_handlers(cls: type) -> dict[type, str]:
    """The handlers declared in ``cls`` itself: message type -> method name."""
    own: dict[type, str] = {}
    for name, attribute in vars(cls).items():
        for message_type in getattr(attribute, HANDLES_ATTRIBUTE, ()):
            other = own.get(message_type)
            if other is not None and other != name:
                raise TypeError(
                    f"{cls.__qualname__}: {message_type.__name__} has two handlers, "
                    f"{cls.__qualname__}.{other} and {cls.__qualname__}.{name}"
                )
            own[message_type] = name
    return own


def build_handler_table(cls: type) -> dict[type, Handler]:
    """Merge the handlers declared along ``cls``'s MRO, the nearest class winning.

    A method redefined without ``@handles`` keeps the types its parent declared for that name (a
    plain override); one redefined with ``@handles`` declares its types anew.
    """
    names: dict[type, str] = {}
    for klass in reversed(cls.__mro__):
        own = _own_handlers(klass)
        redeclared = {name for name, value in vars(klass).items() if hasattr(value, HANDLES_ATTRIBUTE)}
        if redeclared:
            names = {t: n for t, n in names.items() if n not in redeclared}
        names.update(own)
    table: dict[type, Handler] = {}
    for message_type, name in names.items():
        handler = getattr(cls, name, None)
        if handler is None or not _is_async(handler):
            raise TypeError(
                f"{cls.__qualname__}.{name} handles {message_type.__name__} but is not an `async def` method"
            )
        table[message_type] = handler
    return table


def resolve_handler(table: dict[type, Handler], message_type: type, fallback: Handler) -> Handler:
    """The handler of the nearest class in ``message_type``'s MRO, else ``fallback``."""
    for klass in message_type.__mro__:
        handler = table.get(klass)
        if handler is not None:
            return handler
    return fallback
