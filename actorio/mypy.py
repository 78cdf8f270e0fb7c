"""A mypy plugin for actorio: the protocol checks that plain generics cannot make.

Enable it in ``mypy.ini`` (or ``setup.cfg``)::

    [mypy]
    plugins = actorio.mypy

or in ``pyproject.toml``::

    [tool.mypy]
    plugins = ["actorio.mypy"]

It adds two error codes (docs/typing.md shows each):

- ``actorio-protocol``: a message outside the receiver's protocol, sent by ``tell``,
  ``tell_nowait``, ``forward`` or ``ask`` on a reference or an actor, or by the free function
  ``ask(ref, msg)``: ``Greeter's protocol (Greet | Stop) does not accept Other``. A sub-code of
  ``arg-type``, whose error on that argument it replaces; the call keeps its type.
- ``actorio-handler``: on an actor class whose protocol is given, a protocol member that no
  handler takes (unless the class overrides ``handle_message``) and a handler of a type outside
  the protocol, inherited handlers included; and on ``@handles(A, B, ...)``, a return type that
  answers none of the arms of one message's reply type (a subtype of the reply answers it).

Untyped actors and references without a protocol get no plugin errors. Supported mypy versions:
those of the ``mypy`` requirement in actorio's ``dev`` extra.

How it works: at semantic analysis, each actor class records the message types of its own
``@handles(...)`` methods in ``TypeInfo.metadata["actorio"]`` (fullnames, kept in mypy's
cache), and is checked from that record and its bases' records, so that a subclass whose base
module comes from the incremental cache is checked the same. For the send methods, a method
signature hook relaxes the message parameter to any message (keeping the reply type's inference
of ``ask``) and a method hook reports a message outside the protocol. When the plugin does not
understand something (a handler type given by an expression, a mixin with async decorated
methods), it checks nothing rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from mypy.errorcodes import ARG_TYPE, ErrorCode
from mypy.maptype import map_instance_to_supertype
from mypy.messages import format_type_bare
from mypy.nodes import (
    ARG_POS,
    CallExpr,
    ClassDef,
    Decorator,
    Expression,
    FuncDef,
    IndexExpr,
    JsonDict,
    OverloadedFuncDef,
    PlaceholderNode,
    RefExpr,
    SymbolTableNode,
    TypeAlias,
    TypeInfo,
    Var,
)
from mypy.options import Options
from mypy.plugin import (
    ClassDefContext,
    FunctionContext,
    FunctionSigContext,
    MethodContext,
    MethodSigContext,
    Plugin,
)
from mypy.subtypes import is_subtype
from mypy.types import (
    AnyType,
    CallableType,
    FunctionLike,
    Instance,
    ProperType,
    Type,
    TypeOfAny,
    TypeVarType,
    UninhabitedType,
    UnionType,
    get_proper_type,
)
from mypy.typevars import fill_typevars

__all__ = ["ACTORIO_HANDLER", "ACTORIO_PROTOCOL", "ActorioPlugin", "plugin"]

ACTORIO_PROTOCOL = ErrorCode(
    "actorio-protocol",
    "A message sent outside the receiving actor's protocol",
    "actorio",
    sub_code_of=ARG_TYPE,
)
ACTORIO_HANDLER = ErrorCode(
    "actorio-handler",
    "An actor's handlers do not match its protocol",
    "actorio",
)

ACTOR = "actorio._actor.Actor"
EVENT_SOURCED = "actorio.persistence._event_sourced.EventSourcedActor"
TERMINATED = "actorio._watch.Terminated"
ACTOR_REF = "actorio._ref.ActorRef"
HANDLES = "actorio._dispatch.handles"
NO_REPLY = "actorio._message.NoReply"
COROUTINE = "typing.Coroutine"
ASK_FUNCTION = "actorio._ref.ask"
MESSAGE = "actorio._message.Message"
REQUEST = "actorio._types.Request"
SEND_METHODS = frozenset({"tell", "tell_nowait", "forward", "ask"})
METADATA_KEY = "actorio"


class _Defer:
    """A name in a ``@handles(...)`` decorator is not bound yet: analyse the class again later
    (on the semantic analyser's final pass, the class is left unchecked)."""


_DEFER = _Defer()

C = TypeVar("C")
T = TypeVar("T")
Lookup = Callable[[str], "SymbolTableNode | None"]


# -- class checks (semantic analysis) --------------------------------------------------------


def _handled_class(expression: Expression) -> str | _Defer | None:
    """The fullname of the message class ``expression`` names (``Greet``, ``messages.Greet``,
    ``DataMessage[int]``), `_DEFER` if it is not bound yet, ``None`` if it is something else."""
    if isinstance(expression, IndexExpr):
        return _handled_class(expression.base)
    if not isinstance(expression, RefExpr):
        return None
    node = expression.node
    if node is None or isinstance(node, PlaceholderNode):
        return _DEFER
    if isinstance(node, TypeAlias):
        target = get_proper_type(node.target)
        return target.type.fullname if isinstance(target, Instance) else None
    return node.fullname if isinstance(node, TypeInfo) else None


def _handles_types(decorator: Expression) -> list[str] | _Defer | None:
    """The message types of ``@handles(...)``; ``[]`` for another decorator; ``None`` if the
    decorator may be a ``handles`` that the plugin cannot read."""
    if isinstance(decorator, CallExpr) and isinstance(decorator.callee, RefExpr):
        callee = decorator.callee.node
        if callee is None or isinstance(callee, PlaceholderNode):
            return _DEFER
        if decorator.callee.fullname != HANDLES:
            return []
        types: list[str] = []
        for argument, kind in zip(decorator.args, decorator.arg_kinds, strict=True):
            name = _handled_class(argument) if kind == ARG_POS else None
            if name is None or isinstance(name, _Defer):
                return name
            types.append(name)
        return types
    if isinstance(decorator, RefExpr) and isinstance(decorator.node, Var):
        # ``on_greet = handles(Greet)`` then ``@on_greet``: a variable is opaque here.
        declared = get_proper_type(decorator.node.type)
        if declared is None or (isinstance(declared, Instance) and declared.type.fullname == HANDLES):
            return None
    return []


def _own_handlers(defn: ClassDef) -> dict[str, list[str]] | _Defer | None:
    """The class's own handlers, method name -> message type fullnames, as the runtime reads
    them from the class namespace (the last definition of a name wins)."""
    handlers: dict[str, list[str]] = {}
    for statement in defn.defs.body:
        if isinstance(statement, Decorator):
            types: list[str] = []
            for decorator in statement.original_decorators:
                found = _handles_types(decorator)
                if found is None or isinstance(found, _Defer):
                    return found
                types.extend(found)
            if types:
                handlers[statement.name] = types
            else:
                handlers.pop(statement.name, None)
        elif isinstance(statement, (FuncDef, OverloadedFuncDef)):
            handlers.pop(statement.name, None)
    return handlers


def _may_declare_handlers(info: TypeInfo) -> bool:
    """Whether a class that is not an actor (a mixin) has decorated ``async def`` methods, which
    the plugin cannot read (the runtime takes their ``@handles`` too)."""
    return any(isinstance(s.node, Decorator) and s.node.func.is_coroutine for s in info.names.values())


def _recorded_handlers(data: JsonDict) -> dict[str, list[str]] | None:
    """The handlers `_actor_class_hook` recorded (possibly read back from mypy's cache);
    ``None`` for a class it could not read."""
    own: object = data.get("handlers")
    if not isinstance(own, dict):
        return None
    handlers: dict[str, list[str]] = {}
    for name, types in cast("dict[object, object]", own).items():
        if not isinstance(name, str) or not isinstance(types, list):
            return None
        fullnames = [t for t in cast("list[object]", types) if isinstance(t, str)]
        if len(fullnames) != len(cast("list[object]", types)):
            return None
        handlers[name] = fullnames
    return handlers


def _handler_table(info: TypeInfo) -> dict[str, str] | _Defer | None:
    """Handled message type -> method name, merged down ``info``'s MRO as
    ``build_handler_table`` does; `_DEFER` if a base actor was not recorded yet (an import
    cycle), ``None`` if some class in the MRO is not understood."""
    names: dict[str, str] = {}
    for klass in reversed(info.mro):
        if klass.fullname in ("builtins.object", ACTOR):
            continue
        data = klass.metadata.get(METADATA_KEY)
        if data is None:
            if klass.has_base(ACTOR):
                return _DEFER
            if _may_declare_handlers(klass):
                return None
            continue
        own = _recorded_handlers(data)
        if own is None:
            return None
        # A method redeclared with @handles drops the types its parent declared under that name.
        names = {t: n for t, n in names.items() if n not in own}
        names.update((message_type, name) for name, types in own.items() for message_type in types)
    return names


def _protocol_members(protocol: Type) -> list[Instance] | None:
    """The message classes of a protocol (``Greet``, ``Greet | Stop``), or ``None`` for an untyped
    actor (``Message[Any]``, ``Any``, a type variable) or a protocol not understood: the same
    rule as ``actorio._dispatch._members`` at run time."""
    proper = get_proper_type(protocol)
    if isinstance(proper, UnionType):
        members: list[Instance] = []
        for item in proper.items:
            inner = _protocol_members(item)
            if inner is None:
                return None
            members.extend(inner)
        return members
    if not isinstance(proper, Instance) or proper.type.fullname == MESSAGE:
        return None
    return [proper] if proper.type.has_base(MESSAGE) else None


def _protocol(instance: Instance, base: str) -> tuple[Type, list[Instance], Type] | None:
    """For an instance of (a subclass of) ``base``: its protocol type, the protocol's members and
    the protocol's bound (``Message[Any]``); ``None`` if untyped or not understood."""
    base_info = next((klass for klass in instance.type.mro if klass.fullname == base), None)
    if base_info is None or not base_info.defn.type_vars:
        return None
    mapped = map_instance_to_supertype(instance, base_info)
    if len(mapped.args) != 1:
        return None
    members = _protocol_members(mapped.args[0])
    type_var = base_info.defn.type_vars[0]
    if members is None or not isinstance(type_var, TypeVarType):
        return None
    return mapped.args[0], members, type_var.upper_bound


def _overrides_handle_message(info: TypeInfo) -> bool:
    for klass in info.mro:
        if "handle_message" in klass.names:
            return klass.fullname != ACTOR
    return False


def _show(members: list[Instance], options: Options) -> str:
    return " | ".join(format_type_bare(member, options) for member in members)


def _check_class(ctx: ClassDefContext, info: TypeInfo, lookup: Lookup) -> None:
    """Mirror ``actorio._dispatch.check_protocol`` on ``info``."""
    self_type = fill_typevars(info)
    found = _protocol(self_type, ACTOR) if isinstance(self_type, Instance) else None
    if found is None:
        return
    table = _handler_table(info)
    if isinstance(table, _Defer) and not ctx.api.final_iteration:
        ctx.api.defer()
        return
    if not isinstance(table, dict):
        return
    _, members, _ = found
    handled: dict[str, TypeInfo] = {}
    for fullname in table:
        symbol = lookup(fullname)
        if symbol is None or not isinstance(symbol.node, TypeInfo):
            return  # not understood: check nothing
        handled[fullname] = symbol.node
    name = info.name
    protocol = _show(members, ctx.api.options)
    for fullname, message_type in handled.items():
        if message_type.has_base(TERMINATED):
            continue  # a system message: any actor may handle it
        if not any(
            message_type.has_base(member.type.fullname) or member.type.has_base(fullname)
            for member in members
        ):
            ctx.api.fail(
                f"{name}.{table[fullname]} handles {message_type.name}, which is outside "
                f"{name}'s protocol ({protocol})",
                ctx.cls,
                code=ACTORIO_HANDLER,
            )
    if _overrides_handle_message(info):
        return
    for member in members:
        if not any(member.type.has_base(fullname) for fullname in handled):
            shown = format_type_bare(member, ctx.api.options)
            ctx.api.fail(
                f"{name}'s protocol includes {shown}, but {name} has no handler for it (add a method "
                f"decorated with @handles({member.type.name}), or override handle_message)",
                ctx.cls,
                code=ACTORIO_HANDLER,
            )


def _actor_class_hook(ctx: ClassDefContext, lookup: Lookup) -> None:
    """Record the class's own handlers in its metadata, then check the class.

    It runs again each time the semantic analyser goes over the module again (while some part of
    it is incomplete); mypy drops the repeated errors."""
    info = ctx.cls.info
    if not info.has_base(ACTOR):
        return
    own = _own_handlers(ctx.cls)
    if isinstance(own, _Defer):
        if not ctx.api.final_iteration:
            ctx.api.defer()
            return
        own = None
    if own is None:
        info.metadata[METADATA_KEY] = {"opaque": True}
        return
    info.metadata[METADATA_KEY] = {"handlers": own}
    _check_class(ctx, info, lookup)
    _check_apply(ctx, info)


def _check_apply(ctx: ClassDefContext, info: TypeInfo) -> None:
    """Mirror ``EventSourcedActor.__init_subclass__``: a class that subscripts it (naming its state
    and events: a bare base names nothing) defines ``apply`` or inherits one from below it."""
    if not any(
        isinstance(expr, IndexExpr) and isinstance(expr.base, RefExpr) and expr.base.fullname == EVENT_SOURCED
        for expr in ctx.cls.base_type_exprs
    ) or not any(
        base.type.fullname == EVENT_SOURCED
        and not any(isinstance(get_proper_type(arg), TypeVarType) for arg in base.args[1:])
        for base in info.bases
    ):
        return
    definer = next(klass for klass in info.mro if "apply" in klass.names or klass.fullname == EVENT_SOURCED)
    if definer.fullname == EVENT_SOURCED:
        message = f"{info.name} names its events but defines no apply(state, event)"
        ctx.api.fail(message, ctx.cls, code=ACTORIO_HANDLER)


# -- sends (type checking) -------------------------------------------------------------------


def _receiver(typ: ProperType, method: str) -> tuple[str, Type, list[Instance], Type] | None:
    """For ``typ.method(...)`` with ``typ`` an actor or a reference with a protocol, and the method
    actorio's own: the receiver's name, protocol type, members and bound."""
    if not isinstance(typ, Instance):
        return None
    definer = next((klass for klass in typ.type.mro if method in klass.names), None)
    if definer is None:
        return None
    if definer.fullname in (ACTOR, ACTOR_REF):
        base = definer.fullname
    elif definer.has_base(ACTOR_REF):  # a reference that sends its own way (RemoteRef, EntityRef)
        base = ACTOR_REF
    else:
        return None
    found = _protocol(typ, base)
    if found is None:
        return None
    return (typ.type.name, *found)


def _relax_message_parameter(ctx: MethodSigContext, method: str) -> FunctionLike:
    """Accept any message in the message parameter; `_report_outside_protocol` checks it."""
    signature = ctx.default_signature
    found = _receiver(ctx.type, method)
    if found is None or not signature.arg_types or signature.arg_kinds[0] != ARG_POS:
        return signature
    bound = found[3]
    formal = get_proper_type(signature.arg_types[0])
    if isinstance(formal, Instance) and formal.type.fullname == REQUEST and len(formal.args) == 2:
        # ``ask``: ``Request[P, R]`` becomes ``Request[Any, R]``, so R still types the reply.
        relaxed: Type = Instance(formal.type, [AnyType(TypeOfAny.special_form), formal.args[1]])
    else:
        relaxed = bound
    # copy_modified's parameters are typed with mypy's `Bogus` alias, which pyright cannot read.
    return signature.copy_modified(  # pyright: ignore[reportUnknownMemberType]
        arg_types=[relaxed, *signature.arg_types[1:]]
    )


def _message_type(ctx: MethodContext | FunctionContext, index: int, bound: Type) -> Type:
    """The type of the message argument. The relaxed signature gives the argument the context
    ``Message[Any]``, from which a generic call written inline (``probe.asking(Compute())``)
    infers ``Message[Any]``: such an argument is typed again without a context."""
    message = ctx.arg_types[index][0]
    proper = get_proper_type(message)
    bound_proper = get_proper_type(bound)
    if (
        isinstance(proper, Instance)
        and isinstance(bound_proper, Instance)
        and proper.type.fullname == bound_proper.type.fullname
        and isinstance(ctx.args[index][0], CallExpr)
    ):
        return ctx.api.get_expression_type(ctx.args[index][0])
    return message


def _check_member(
    ctx: MethodContext | FunctionContext, index: int, found: tuple[str, Type, list[Instance], Type]
) -> None:
    name, protocol, members, bound = found
    message = _message_type(ctx, index, bound)
    # Not a message at all: the relaxed signature reported it (arg-type) already.
    if not is_subtype(message, protocol) and is_subtype(message, bound):
        options = ctx.api.options
        ctx.api.fail(
            f"{name}'s protocol ({_show(members, options)}) does not accept "
            f"{format_type_bare(message, options)}",
            ctx.args[index][0],  # where plain mypy puts its arg-type error
            code=ACTORIO_PROTOCOL,
        )


def _report_outside_protocol(ctx: MethodContext, method: str) -> Type:
    found = _receiver(ctx.type, method)
    if found is None or not ctx.arg_kinds or ctx.arg_kinds[0] != [ARG_POS]:
        return ctx.default_return_type
    _check_member(ctx, 0, found)
    return ctx.default_return_type


# -- the free function ask(ref, msg) -----------------------------------------------------------


def _relax_ask_function(ctx: FunctionSigContext) -> CallableType:
    """``ask(ref: ActorRef[M] | Actor[M], message: Request[M, R])`` becomes ``message:
    Request[Any, R]``, so that ``M`` is solved from ``ref`` alone, and a message outside ``ref``'s
    protocol is reported here, naming the message and the protocol (plain mypy reports ``ref``
    as the mismatched argument, against the first overload).

    Reported from the signature hook rather than a function hook: mypy runs a function hook
    inside each overload's trial, where an error would make it reject the matching overload."""
    signature = ctx.default_signature
    if len(signature.arg_types) < 2 or len(ctx.args) < 2 or len(ctx.args[0]) != 1 or len(ctx.args[1]) != 1:
        return signature
    formal = get_proper_type(signature.arg_types[1])
    if not (isinstance(formal, Instance) and formal.type.fullname == REQUEST and len(formal.args) == 2):
        return signature
    receiver = get_proper_type(ctx.api.get_expression_type(ctx.args[0][0]))
    found = _receiver(receiver, "ask")
    if found is None:
        return signature
    name, protocol, members, bound = found
    message = ctx.api.get_expression_type(ctx.args[1][0])
    if not is_subtype(message, protocol) and is_subtype(message, bound):
        options = ctx.api.options
        ctx.api.fail(
            f"{name}'s protocol ({_show(members, options)}) does not accept "
            f"{format_type_bare(message, options)}",
            ctx.args[1][0],
            code=ACTORIO_PROTOCOL,
        )
    relaxed = Instance(formal.type, [AnyType(TypeOfAny.special_form), formal.args[1]])
    return signature.copy_modified(  # pyright: ignore[reportUnknownMemberType]
        arg_types=[signature.arg_types[0], relaxed, *signature.arg_types[2:]]
    )


# -- @handles(A, B, ...): the handler's return type covers every reply type ------------------


def _reply_arms(reply: Type) -> list[Type]:
    proper = get_proper_type(reply)
    return list(proper.items) if isinstance(proper, UnionType) else [reply]


def _message_reply(message: Type) -> Type | None:
    """The reply type of a message type (``R`` of its ``Message[R]`` base), or ``None``."""
    proper = get_proper_type(message)
    if not (isinstance(proper, Instance) and proper.type.has_base(MESSAGE)):
        return None
    mapped = map_instance_to_supertype(proper, next(k for k in proper.type.mro if k.fullname == MESSAGE))
    return mapped.args[0] if len(mapped.args) == 1 else None


def _report_partial_reply(ctx: MethodSigContext) -> FunctionLike:
    """On ``@handles(Ping, Count)`` applied to a handler returning only ``Pong``: plain generics
    accept it (``Pong`` is a subtype of ``Pong | int``), but a ``Count`` would get a ``Pong``.
    Reported from the signature hook, which mypy runs once per call (a method hook runs in each
    overload's trial of ``__call__``, where an error would reject the matching overload)."""
    decorator = get_proper_type(ctx.type)
    if not (
        isinstance(decorator, Instance) and decorator.type.fullname == HANDLES and len(decorator.args) == 2
    ):
        return ctx.default_signature
    if len(ctx.args) != 1 or len(ctx.args[0]) != 1:
        return ctx.default_signature
    handler = get_proper_type(ctx.api.get_expression_type(ctx.args[0][0]))
    if not isinstance(handler, CallableType):
        return ctx.default_signature
    coroutine = get_proper_type(handler.ret_type)
    if not (
        isinstance(coroutine, Instance) and coroutine.type.fullname == COROUTINE and len(coroutine.args) == 3
    ):
        return ctx.default_signature
    returned = get_proper_type(coroutine.args[2])
    arms = [get_proper_type(arm) for arm in _reply_arms(returned)]
    if isinstance(returned, (AnyType, UninhabitedType)) or all(
        isinstance(arm, Instance) and arm.type.fullname == NO_REPLY for arm in arms
    ):
        return ctx.default_signature  # NoReply only: it never returns the reply
    messages = _reply_arms(decorator.args[0])
    if len(messages) < 2:
        return ctx.default_signature  # one message: plain generics check the return type
    # Each message's reply is answered by an arm of the return type (``int`` answers ``int | None``).
    missing: list[Type] = []
    for message in messages:
        reply = _message_reply(message)
        if reply is None or isinstance(get_proper_type(reply), AnyType):
            return ctx.default_signature  # more types than the overloads read: unchecked
        if not any(is_subtype(arm, reply) for arm in arms) and reply not in missing:
            missing.append(reply)
    if missing:
        options = ctx.api.options
        ctx.api.fail(
            f"The handler returns {format_type_bare(returned, options)}, but its messages are "
            f"answered with {format_type_bare(decorator.args[1], options)}: "
            f"{' | '.join(format_type_bare(reply, options) for reply in missing)} is left out",
            ctx.context,
            code=ACTORIO_HANDLER,
        )
    return ctx.default_signature


def _guarded(hook: Callable[[C], T], default: Callable[[C], T]) -> Callable[[C], T]:
    """``hook``, falling back to mypy's own result if it fails: the plugin API changes between
    mypy versions, and a plugin must never crash mypy (what it does not understand, it leaves)."""

    def run(ctx: C) -> T:
        try:
            return hook(ctx)
        except Exception:
            return default(ctx)

    return run


# -- the plugin --------------------------------------------------------------------------------


class ActorioPlugin(Plugin):
    """Hooks matched by fullname for actorio's classes, and by ``has_base`` for their subclasses."""

    def _class_has_base(self, fullname: str, *bases: str) -> bool | None:
        """Whether class ``fullname`` derives from one of ``bases``; ``None`` if not found."""
        symbol = self.lookup_fully_qualified(fullname)
        if symbol is None or not isinstance(symbol.node, TypeInfo):
            return None
        return any(symbol.node.has_base(base) for base in bases)

    def _send_method(self, fullname: str) -> str | None:
        class_name, _, method = fullname.rpartition(".")
        if method not in SEND_METHODS or self._class_has_base(class_name, ACTOR, ACTOR_REF) is False:
            return None
        return method

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        if self._class_has_base(fullname, ACTOR):
            lookup = self.lookup_fully_qualified  # unlike the semantic analyser's, finds nested classes
            return _guarded(lambda ctx: _actor_class_hook(ctx, lookup), lambda ctx: None)
        return None

    def get_method_signature_hook(self, fullname: str) -> Callable[[MethodSigContext], FunctionLike] | None:
        if fullname == f"{HANDLES}.__call__":
            return _guarded(_report_partial_reply, lambda ctx: ctx.default_signature)
        method = self._send_method(fullname)
        if method is None:
            return None
        return _guarded(lambda ctx: _relax_message_parameter(ctx, method), lambda ctx: ctx.default_signature)

    def get_function_signature_hook(
        self, fullname: str
    ) -> Callable[[FunctionSigContext], FunctionLike] | None:
        if fullname == ASK_FUNCTION:
            return _guarded(_relax_ask_function, lambda ctx: ctx.default_signature)
        return None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        method = self._send_method(fullname)
        if method is None:
            return None
        return _guarded(
            lambda ctx: _report_outside_protocol(ctx, method), lambda ctx: ctx.default_return_type
        )


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point: the plugin class, whatever the mypy version (see the module's doc)."""
    return ActorioPlugin
