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
import sys
import types
import typing
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import typing_extensions

from ._message import Message, NoReply, is_message_class
from ._types import Request, union_arms
from ._watch import Terminated

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = [
    "HANDLES_ATTRIBUTE",
    "SYSTEM_MESSAGES",
    "HandlerWrapper",
    "build_handler_table",
    "check_handlers",
    "declared_message_types",
    "handler_wrappers",
    "handles",
    "resolve_handler",
    "set_handler_wrappers",
    "set_up_dispatch",
]

HANDLES_ATTRIBUTE = "__actorio_handles__"

Handler = Callable[[Any, Any], Awaitable[Any]]

SYSTEM_MESSAGES: tuple[type[Message[Any]], ...] = (Terminated,)
"""Messages the runtime delivers to any actor, whatever its protocol: a handler may take them."""

A = TypeVar("A", bound="Actor[Any]")
MI = TypeVar("MI", bound=Message[Any])
RI = TypeVar("RI")
M1 = TypeVar("M1", bound=Message[Any])
M2 = TypeVar("M2", bound=Message[Any])
M3 = TypeVar("M3", bound=Message[Any])
M4 = TypeVar("M4", bound=Message[Any])
M5 = TypeVar("M5", bound=Message[Any])
M6 = TypeVar("M6", bound=Message[Any])
M7 = TypeVar("M7", bound=Message[Any])
M8 = TypeVar("M8", bound=Message[Any])
M9 = TypeVar("M9", bound=Message[Any])
M10 = TypeVar("M10", bound=Message[Any])
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")
R5 = TypeVar("R5")
R6 = TypeVar("R6")
R7 = TypeVar("R7")
R8 = TypeVar("R8")
R9 = TypeVar("R9")
R10 = TypeVar("R10")


def _is_async(function: object) -> bool:
    # A plain bool: inspect's TypeGuard would narrow a decorated handler's type away.
    return inspect.iscoroutinefunction(function)


class handles(Generic[MI, RI]):  # noqa: N801 - reads as a decorator: @handles(Greet)
    """Declare the message types an actor method handles: ``@handles(Greet, Hello)``.

    The method must be ``async def``; it is called with each message of those types (or of their
    subclasses that have no nearer handler), one at a time. Its return value is the reply to an
    ask, unless it told the message's sender something first or handed the message on.
    Decorating a method twice adds the types of both at run time; the type checkers see only the
    outer decorator, so list every type in one ``@handles`` in typed code.

    Statically (mypy and pyright), the method must accept every listed type and return the union
    of their reply types (or `NoReply`): ``@handles(Greet)`` on
    ``async def greet(self, msg: Greet) -> Greeting``. With more than ten types the handler's
    signature is not checked. A handler of several types that returns only some of their reply
    types (``@handles(Ping, Count)`` returning a ``Pong`` where a ``Count`` wants an ``int``) is
    reported by actorio's mypy plugin; plain generics cannot see it (a narrower return type is a
    subtype).
    """

    __slots__ = ("message_types",)

    # Each type's reply type is read separately (through `Request`), so that mypy builds their
    # union rather than joining them (it would join Greeting and int into object).
    @overload
    def __init__(
        self: handles[M1, R1],
        t1: type[Request[M1, R1]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2, R1 | R2],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3, R1 | R2 | R3],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4, R1 | R2 | R3 | R4],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4 | M5, R1 | R2 | R3 | R4 | R5],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4 | M5 | M6, R1 | R2 | R3 | R4 | R5 | R6],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        t6: type[Request[M6, R6]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4 | M5 | M6 | M7, R1 | R2 | R3 | R4 | R5 | R6 | R7],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        t6: type[Request[M6, R6]],
        t7: type[Request[M7, R7]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4 | M5 | M6 | M7 | M8, R1 | R2 | R3 | R4 | R5 | R6 | R7 | R8],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        t6: type[Request[M6, R6]],
        t7: type[Request[M7, R7]],
        t8: type[Request[M8, R8]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[M1 | M2 | M3 | M4 | M5 | M6 | M7 | M8 | M9, R1 | R2 | R3 | R4 | R5 | R6 | R7 | R8 | R9],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        t6: type[Request[M6, R6]],
        t7: type[Request[M7, R7]],
        t8: type[Request[M8, R8]],
        t9: type[Request[M9, R9]],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: handles[
            M1 | M2 | M3 | M4 | M5 | M6 | M7 | M8 | M9 | M10, R1 | R2 | R3 | R4 | R5 | R6 | R7 | R8 | R9 | R10
        ],
        t1: type[Request[M1, R1]],
        t2: type[Request[M2, R2]],
        t3: type[Request[M3, R3]],
        t4: type[Request[M4, R4]],
        t5: type[Request[M5, R5]],
        t6: type[Request[M6, R6]],
        t7: type[Request[M7, R7]],
        t8: type[Request[M8, R8]],
        t9: type[Request[M9, R9]],
        t10: type[Request[M10, R10]],
        /,
    ) -> None: ...
    @overload
    def __init__(self: handles[Any, Any], *message_types: type[Message[Any]]) -> None: ...
    def __init__(self, *message_types: Any) -> None:
        if not message_types:
            raise TypeError("@handles() needs at least one message type")
        for message_type in message_types:
            if not (isinstance(message_type, type) and issubclass(message_type, Message)):
                raise TypeError(f"@handles() takes Message subclasses, not {message_type!r}")
        self.message_types: tuple[type[Message[Any]], ...] = message_types

    # Three shapes, so that the decorated method keeps its own return type: the reply type, NoReply,
    # or both. (One signature returning RI | NoReply would widen every handler's type to that union.)
    @overload
    def __call__(
        self, handler: Callable[[A, MI], Coroutine[Any, Any, RI]]
    ) -> Callable[[A, MI], Coroutine[Any, Any, RI]]: ...
    @overload
    def __call__(
        self, handler: Callable[[A, MI], Coroutine[Any, Any, NoReply]]
    ) -> Callable[[A, MI], Coroutine[Any, Any, NoReply]]: ...
    @overload
    def __call__(
        self, handler: Callable[[A, MI], Coroutine[Any, Any, RI | NoReply]]
    ) -> Callable[[A, MI], Coroutine[Any, Any, RI | NoReply]]: ...
    def __call__(self, handler: Any) -> Any:
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


_ALIAS_TYPES: tuple[type, ...] = tuple(
    {t for t in (getattr(typing, "TypeAliasType", None), typing_extensions.TypeAliasType) if t is not None}
)
"""The classes of a ``type P = A | B`` alias (``typing``'s, 3.12+, and typing_extensions')."""

_NESTING = 16
"""How many strings, aliases and type-variable defaults a protocol may go through to its classes."""


class _Protocol:
    """Reads one actor class's protocol annotation into its message classes (see `_message_types`)."""

    __slots__ = ("cls", "open", "parameters")

    def __init__(self, cls: type, root: type) -> None:
        self.cls = cls
        self.parameters: tuple[Any, ...] = getattr(root, "__parameters__", ())
        self.open = False
        """Whether the protocol is the default of a type variable of the class itself (a generic
        base, which its subclasses bind): its members need no handler in it."""

    def fail(self, problem: str) -> TypeError:
        return TypeError(f"{self.cls.__qualname__}'s protocol {problem}")

    def resolve(self, text: str, module: str, depth: int) -> tuple[type, ...] | None:
        """A string annotation evaluated in ``module``'s namespace, now (at class creation)."""
        namespace = {**getattr(sys.modules.get(module), "__dict__", {}), **_defining_locals()}
        try:
            value: Any = eval(text, namespace)
        except NameError as error:
            raise self.fail(
                f"{text!r} names {error.name}, which {module} does not define when the class is "
                f"created (the protocol is read then: define its message classes first)"
            ) from None
        except Exception as error:  # a syntax error, a failing subscript: say which string
            raise self.fail(f"{text!r} cannot be evaluated ({type(error).__name__}: {error})") from None
        return self.types(value, module, depth + 1)

    def types(self, annotation: Any, module: str, depth: int = 0) -> tuple[type, ...] | None:
        """The message classes of ``annotation`` (its strings read in ``module``), or ``None``
        for any message."""
        if depth > _NESTING:
            raise self.fail(f"{annotation!r} does not come to message classes")
        if isinstance(annotation, str):
            return self.resolve(annotation, module, depth)
        if isinstance(annotation, typing.ForwardRef):
            owner = annotation.__forward_module__ or module
            return self.resolve(annotation.__forward_arg__, owner, depth)
        if isinstance(annotation, _ALIAS_TYPES):
            try:
                value = annotation.__value__  # type: ignore[attr-defined]
            except NameError as error:
                raise self.fail(
                    f"{annotation!r} names {error.name}, undefined when the class is created"
                ) from None
            return self.types(value, getattr(annotation, "__module__", module), depth + 1)
        if isinstance(annotation, typing.TypeVar | typing_extensions.TypeVar):
            if annotation in self.parameters:
                return None  # the root's own parameter (Actor[P]): any message
            has_default = getattr(annotation, "has_default", None)
            if has_default is None or not has_default():
                return None  # left to be bound by a subclass: until then, any message
            # Unbound here, as the checkers read it: the default (typing_extensions, or 3.13+).
            default: Any = typing.cast(Any, annotation).__default__
            self.open = self.open or annotation in getattr(self.cls, "__parameters__", ())
            return self.types(default, getattr(annotation, "__module__", module), depth + 1)
        if annotation is typing.Any:
            return None
        arms = union_arms(annotation)
        if len(arms) > 1:
            members: list[type] = []
            untyped = False
            for arm in arms:
                inner = self.types(arm, module, depth + 1)
                if inner is None:
                    untyped = True  # an arm that takes any message; the others are still checked
                else:
                    members.extend(inner)
            return None if untyped else tuple(dict.fromkeys(members))
        if not is_message_class(annotation):
            raise self.fail(
                f"includes {annotation!r}, which is not a Message subclass: a protocol is a Message "
                f"subclass, a union of them, or a type variable (Actor[Greet | Stop], Actor[P])"
            )
        origin = annotation.__pydantic_generic_metadata__["origin"]
        if annotation is Message or origin is Message:
            return None  # Message, Message[Any]: accepts any message
        return (typing.cast("type[Any]", annotation),)


def _defining_locals() -> dict[str, Any]:
    """The local names of the function whose body is creating an actor class, if one is (the
    first frame out of actorio, typing and abc): a protocol string names classes defined there
    too, as in a test function. Empty at a module's top level."""
    frame: types.FrameType | None = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _INTERNAL:
        frame = frame.f_back
    if frame is None or frame.f_locals is frame.f_globals:
        return {}
    return dict(frame.f_locals)


_INTERNAL = frozenset({"actorio", "typing", "typing_extensions", "abc"})


def declared_message_types(cls: type, root: type) -> tuple[type, ...] | None:
    """The message classes that actor class ``cls`` declares it accepts: from the nearest
    ``Root[...]`` base in its MRO that was given an argument, else ``None`` (untyped: any message).

    The argument is read at class creation, as the handler table is built: a string
    (``Actor["Greet | Stop"]``) is evaluated in the namespace of the module that declares it, and
    names a message class already defined; a ``type`` alias stands for its value; a type variable
    left unbound stands for its default (``TypeVar("P", bound=Message[Any], default=Count)``,
    read in the type variable's module), or for any message if it has none; ``Any``, ``Message``
    and ``Message[Any]`` are any message. A subclass that binds it (``class Sub(Base[Count |
    Ping])``) has its own.
    Anything else (``Actor[Greet | int]``, a name not yet defined) is a `TypeError`.
    """
    return _declared(cls, root)[0]


def _declared(cls: type, root: type) -> tuple[tuple[type, ...] | None, bool]:
    """`declared_message_types`, and whether the class is a generic base whose protocol is its
    own type variable's default (`_Protocol.open`)."""
    reader = _Protocol(cls, root)
    for klass in cls.__mro__:
        for base in vars(klass).get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, root):
                arguments = typing.get_args(base)
                if arguments:
                    found = reader.types(_protocol_argument(origin, arguments, root), klass.__module__)
                    return found, reader.open
    return None, False


def _protocol_argument(origin: type, arguments: tuple[Any, ...], root: type) -> Any:
    """What ``origin[*arguments]`` gives as ``root``'s protocol: the first argument of ``root``
    itself; for a generic subclass (``class Base(Actor[P], Generic[T, P])``), the argument in the
    place of the type variable it passes on (``Base[int, Greet]``: ``Greet``)."""
    if origin is not root:
        for base in vars(origin).get("__orig_bases__", ()):
            inner = typing.get_origin(base)
            if isinstance(inner, type) and issubclass(inner, root) and typing.get_args(base):
                passed = _protocol_argument(inner, typing.get_args(base), root)
                parameters: tuple[Any, ...] = getattr(origin, "__parameters__", ())
                if len(parameters) == len(arguments) and any(passed is p for p in parameters):
                    return arguments[[id(p) for p in parameters].index(id(passed))]
                return passed
    return arguments[0]


def check_handlers(
    cls: type, table: dict[type, Handler], message_types: tuple[type, ...], fallback: bool
) -> None:
    """At class creation: every protocol member has a handler (or ``handle_message`` is overridden),
    and every handler takes a member, a subclass or a base of one."""
    name = cls.__qualname__
    for message_type, handler in table.items():
        if issubclass(message_type, SYSTEM_MESSAGES):
            continue
        if not any(issubclass(message_type, m) or issubclass(m, message_type) for m in message_types):
            raise TypeError(
                f"{name}.{handler.__name__} handles {message_type.__name__}, which is outside "
                f"{name}'s protocol ({' | '.join(m.__name__ for m in message_types)})"
            )
    if fallback:
        return
    for member in message_types:
        if not any(issubclass(member, handled) for handled in table):
            raise TypeError(
                f"{name}'s protocol includes {member.__name__}, but {name} has no handler for it "
                f"(add a method decorated with @handles({member.__name__}), or override handle_message)"
            )


RUNTIME_NAMES = frozenset(
    {
        "start", "stop", "wait", "run_until_stopped", "mainloop_setup", "mainloop_teardown",
        "pre_restart", "post_restart", "handle_child_stopped", "statistics", "identifier",
        "reference", "logger", "running", "started", "stopped", "children", "protocol",
        "mailbox_capacity", "mailbox_throughput", "child_stop_timeout", "supervisor_strategy",
    }
)  # fmt: skip
"""The names of `Actor` that the runtime calls or reads on an actor: a handler may not take one
(see `reserve_handler_names`). The helpers only a user calls (``ask``, ``tell``, ``watch``, ...)
may be shadowed: only that user's own calls then reach the handler."""

_reserved: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


def reserve_handler_names(cls: type, *names: str) -> None:
    """Refuse, from now on, a handler named as one of ``names`` in any subclass of ``cls``
    (`TypeError` at class creation): the methods and attributes that the runtime, or an
    extension's (persistence's ``recover``, ``save``), calls or reads on its actors. A handler
    taking such a name would replace it, and the actor would fail far from the cause."""
    _reserved[cls] = _reserved.get(cls, frozenset()) | frozenset(names)


def _check_names(cls: type, root: type) -> None:
    """``TypeError`` for a handler of ``cls`` (its own, or a mixin's) named as a reserved name
    (`RUNTIME_NAMES`, and those of `reserve_handler_names` for ``cls``'s bases)."""
    reserved = set(RUNTIME_NAMES)
    for klass in cls.__mro__:
        reserved |= _reserved.get(klass, frozenset())
    for name in sorted(reserved):
        value = inspect.getattr_static(cls, name, None)
        if hasattr(value, HANDLES_ATTRIBUTE):
            types = ", ".join(t.__name__ for t in getattr(value, HANDLES_ATTRIBUTE))
            owner = next((k for k in reversed(cls.__mro__) if name in vars(k)), root)
            raise TypeError(
                f"{cls.__qualname__}.{name} handles {types}, but the runtime calls {name} on an "
                f"actor ({owner.__qualname__}.{name}): give the handler another name"
            )


def set_up_dispatch(cls: Any, root: Any, signals: dict[type, Handler]) -> None:
    """At the creation of actor class ``cls`` (a subclass of ``root``): its handler table, its
    fallback, its declared message types (checked against the handlers), an empty dispatch cache
    that starts with the runtime's ``signals``, and an empty cache of accepted message classes."""
    _check_names(cls, root)
    cls._actor_handlers = table = build_handler_table(cls)
    cls._actor_fallback = cls.handle_message
    declared, open_base = _declared(cls, root)
    cls._actor_message_types = declared
    if declared is not None:
        check_handlers(cls, table, declared, open_base or cls.handle_message is not root.handle_message)
    cls._actor_dispatch = dict(signals)
    cls._actor_accepts = {}
    instrument_class(cls, signals)


# -- instrumented dispatch ----------------------------------------------------------------------
#
# Handler wrappers that tracing, metrics or statistics put around the handlers of every actor
# class, in the class's own tables, so that the mainloop runs as it is. Instrumenting replaces, on
# each class, the handler table and the fallback with wrapped ones and starts a new dispatch cache
# (the runtime's signals only). While no wrapper is set nothing is wrapped, and the mainloop pays
# nothing: no test per message, no call more. An actor started after a change reads the new tables;
# one already running keeps the dispatch cache it started with (its mainloop holds it): the
# message classes it had handled keep their handlers, those it meets later are resolved through
# the class's current table.

HandlerWrapper = Callable[[type, "type | None", Handler], Handler]
"""``wrap(actor_class, message_type, handler) -> handler``: what stands in for ``handler``, the
handler of ``actor_class`` for ``message_type`` (``None`` for the fallback, ``handle_message``).
The handler returned is awaited as ``await handler(actor, message)`` and must return what
``handler`` returned and raise what it raised."""

_wrappers: tuple[HandlerWrapper, ...] = ()

_originals: weakref.WeakKeyDictionary[type, tuple[dict[type, Handler], Handler]] = weakref.WeakKeyDictionary()
"""Each instrumented class's own handler table and fallback, as its creation made them."""


def instrument_class(cls: Any, signals: dict[type, Handler]) -> None:
    """At the creation of an actor class: wrap its handlers if wrappers are set (else nothing)."""
    if _wrappers:
        _apply(cls, signals)


def set_handler_wrappers(
    root: Any, signals: dict[type, Handler], wrappers: tuple[HandlerWrapper, ...]
) -> None:
    """Make ``wrappers`` (applied in order: the last is outermost) the ones around every handler of
    ``root`` and its subclasses, now and for the classes created from now on. An empty tuple puts
    the classes' own handlers back."""
    global _wrappers
    _wrappers = wrappers
    pending = [root]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        _apply(cls, signals)


def handler_wrappers() -> tuple[HandlerWrapper, ...]:
    """The handler wrappers set now, innermost first."""
    return _wrappers


def _apply(cls: Any, signals: dict[type, Handler]) -> None:
    original = _originals.get(cls)
    if original is None:
        if not _wrappers:
            return  # never instrumented: its tables are its own
        original = _originals[cls] = (cls._actor_handlers, cls._actor_fallback)
    handlers, fallback = original
    if not _wrappers:
        del _originals[cls]
    else:
        handlers = {kind: _wrap(cls, kind, handler) for kind, handler in handlers.items()}
        fallback = _wrap(cls, None, fallback)
    cls._actor_handlers = handlers
    cls._actor_fallback = fallback
    cls._actor_dispatch = dict(signals)


def _wrap(cls: type, message_type: type | None, handler: Handler) -> Handler:
    for wrapper in _wrappers:
        handler = wrapper(cls, message_type, handler)
    return handler
