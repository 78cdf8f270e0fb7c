"""An actor's protocol as data: its messages on the wire, validated, dumped and described.

``Greeter.protocol`` is an `ActorProtocol`: for each message type the actor accepts, its wire name,
its reply type and its handler. It validates raw JSON payloads into typed messages (one pydantic
discriminated-union validator per protocol, built on first use), gives a message's wire form, and
describes the protocol as JSON Schema.

The wire form of a message is one JSON object::

    {"type": "greet", "data": {"name": "World", "creation_date": "..."}, "id": 7, "reply_to": 3}

- ``type``: the message class's wire name, its ``wire_name: ClassVar[str]`` if the class itself
  declares one (it is not inherited), else its class name. A receiver also accepts the class's
  ``wire_aliases: ClassVar[tuple[str, ...]]`` (former wire names, say, so that a rename stays
  compatible with senders that use the old one); a sender always writes the wire name.
- ``data``: the message's fields. ``creation_date`` may be left out (it defaults to now); ``sender``
  is never part of it; a field the message does not declare is refused. ``data`` may itself be left
  out when the message has no required field.
- ``id`` and ``reply_to``: optional correlation fields (a string, an integer or null), returned by
  `ActorProtocol.validate_envelope` and written by `ActorProtocol.dump`; actorio gives them no other
  meaning. By convention a reply carries the ``id`` of its request as its ``reply_to``.
"""

# pyright: reportPrivateUsage=false
# The protocol reads the actor class's dispatch table (``_actor_*``), built by _actor.py.

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeAlias, Union, cast

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)
from pydantic.errors import PydanticUserError
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError, PydanticSerializationError

from ._dispatch import SYSTEM_MESSAGES, Handler, resolve_handler
from ._exceptions import InvalidPayload, PayloadError
from ._message import Message, reply_messages
from ._sender import NO_SENDER
from ._types import M_co

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from ._actor import Actor

    M = TypeVar("M", bound=Message[Any])

__all__ = [
    "ActorProtocol",
    "Envelope",
    "Payload",
    "ProtocolAttribute",
    "ProtocolEntry",
    "check_wire_names",
    "encode_wire",
    "envelope_model",
    "message_types_of",
    "protocol_of_class",
    "reply_type_of",
    "union_adapter",
    "wire_aliases_of",
    "wire_name_of",
]

Payload: TypeAlias = Mapping[str, Any] | str | bytes | bytearray
"""What `ActorProtocol.validate` takes: a dict, or JSON text (``str`` or ``bytes``)."""

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FORMAT = 2
"""The layout of `ActorProtocol.json_schema`'s document (``x-actorio.format``)."""

MAX_PROBLEMS = 20
"""How many problems an `InvalidPayload` lists at most (then one saying how many more)."""
MAX_QUOTE_CHARS = 120
"""How much of a value from the payload a problem quotes."""
MAX_ID_CHARS = 256
"""The longest ``id`` an `InvalidPayload` reports (a longer one is not read)."""

_CACHE_ATTRIBUTE = "_actor_wire_protocol"


# -- what a protocol is made of ------------------------------------------------------------------


def wire_name_of(message_type: type[Message[Any]]) -> str:
    """The wire name of ``message_type``: the ``wire_name`` class variable it declares itself (a
    parametrized generic message, ``Box[int]``, reads its generic class's), else its class name."""
    own = vars(message_type).get("wire_name")
    origin = message_type.__pydantic_generic_metadata__["origin"]
    if own is None and origin is not None:
        own = vars(origin).get("wire_name")
    if own is None:
        return message_type.__name__
    if not isinstance(own, str) or not own:
        raise TypeError(f"{message_type.__qualname__}.wire_name must be a non-empty str, not {own!r}")
    return own


def wire_aliases_of(message_type: type[Message[Any]]) -> tuple[str, ...]:
    """The other wire names that receivers accept for ``message_type``: the ``wire_aliases`` class
    variable it declares itself (not inherited; a parametrized generic message reads its generic
    class's), a tuple of non-empty strings, else ``()``."""
    own = vars(message_type).get("wire_aliases")
    origin = message_type.__pydantic_generic_metadata__["origin"]
    if own is None and origin is not None:
        own = vars(origin).get("wire_aliases")
    if own is None:
        return ()
    names: object = own
    if not isinstance(names, tuple) or not all(
        isinstance(name, str) and name for name in cast("tuple[object, ...]", names)
    ):
        raise TypeError(
            f"{message_type.__qualname__}.wire_aliases must be a tuple of non-empty str, not {own!r}"
        )
    name = wire_name_of(message_type)
    return tuple(dict.fromkeys(alias for alias in cast("tuple[str, ...]", names) if alias != name))


def reply_type_of(message_type: type[Message[Any]]) -> Any:
    """The reply type of ``message_type``: ``R`` in its ``Message[R]`` base (``None`` by default;
    ``Any`` where ``R`` is a type variable)."""
    for klass in message_type.__mro__:
        metadata = getattr(klass, "__pydantic_generic_metadata__", None)
        if metadata is not None and metadata["origin"] is Message and metadata["args"]:
            reply = metadata["args"][0]
            return Any if isinstance(reply, typing.TypeVar) else reply
    return None


def message_types_of(actor_type: type[Actor[Any]]) -> tuple[type[Message[Any]], ...]:
    """The message types of an actor class's protocol: those of its ``Actor[...]`` argument, in
    order; for an actor declared without one (``class Echo(Actor)``), the types its ``@handles``
    handlers take, inherited ones first."""
    declared = actor_type._actor_message_types
    if declared is not None:
        return cast("tuple[type[Message[Any]], ...]", declared)
    handled = cast("tuple[type[Message[Any]], ...]", tuple(actor_type._actor_handlers))
    return tuple(kind for kind in handled if not issubclass(kind, SYSTEM_MESSAGES))


def check_wire_names(actor_type: type[Actor[Any]]) -> None:
    """At class creation: no two message types of the protocol share a wire name or an alias
    (``TypeError``)."""
    seen: dict[str, type[Message[Any]]] = {}
    for member in message_types_of(actor_type):
        for name in (wire_name_of(member), *wire_aliases_of(member)):
            other = seen.setdefault(name, member)
            if other is not member:
                raise TypeError(
                    f"{actor_type.__qualname__}'s protocol has two message types with the wire name "
                    f"{name!r}: {_qualified(other)} and {_qualified(member)} (give one of them its own "
                    f'with `wire_name: ClassVar[str] = "..."`, or drop it from `wire_aliases`)'
                )


@dataclass(frozen=True)
class ProtocolEntry:
    """One message type of a protocol: its wire name, class, reply type and handler.

    ``handler`` is the function that handles it on this actor class (the ``@handles`` method of the
    nearest class in the message's MRO, else ``handle_message``), called as
    ``await handler(actor, message)``. ``aliases``: the other wire names it is accepted under.
    """

    wire_name: str
    message_type: type[Message[Any]]
    reply_type: Any
    handler: Handler
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Envelope(Generic[M_co]):
    """A validated payload: the typed ``message`` and the payload's correlation fields."""

    message: M_co
    id: str | int | None = None
    reply_to: str | int | None = None


# -- the wire models -----------------------------------------------------------------------------


def _not_on_the_wire(value: Any) -> Any:
    raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")


def _check_id(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("invalid_id", "must be a string, an integer or null") from None


# The type checkers see SkipJsonSchema as an alias of Annotated; at run time it is a class.
_NotOnTheWire = Annotated[Any, PlainValidator(_not_on_the_wire), cast(Any, SkipJsonSchema)()]
"""``sender`` in a wire model: given in a payload, it is refused as an extra field."""

_CorrelationId = Annotated[StrictStr | StrictInt | None, WrapValidator(_check_id)]


def _wire_model(message_type: type[Message[Any]]) -> type[Message[Any]]:
    """A subclass of ``message_type`` that refuses undeclared fields and ``sender``.

    It inherits the message's fields, validators and config, so that validating through it is
    validating the message itself; `ActorProtocol.validate_envelope` then gives the instance its
    real class back.
    """
    namespace: dict[str, Any] = {
        "__module__": message_type.__module__,
        "__qualname__": message_type.__qualname__,
        "__doc__": message_type.__doc__,
        "__annotations__": {"sender": _NotOnTheWire},
        "sender": Field(default=NO_SENDER, exclude=True),
        "model_config": ConfigDict(extra="forbid", title=message_type.__name__),
    }
    return types.new_class(message_type.__name__, (message_type,), {}, lambda ns: ns.update(namespace))


_wire_prefixes: dict[type, bytes] = {}
"""Per message class, its ``{"type": ...,"data":`` prefix, made at its first encoding."""


def encode_wire(message: Message[Any]) -> bytes:
    """A message's wire form, ``{"type": <wire name>, "data": {...}}``, as compact JSON bytes
    (UTF-8, fields by alias, ``sender`` left out): the one encoder behind `ActorProtocol.dump`,
    the NATS node and its replies.

    The ``{"type": ...,"data":`` prefix is made once per class, and the fields are serialized
    straight to bytes: 25% of a remote tell's cost otherwise (20,000 tells, profiled). The
    serializer is read from the class at each call (a class rebuilt with ``model_rebuild`` is
    encoded as rebuilt). Raises ``TypeError`` if a field cannot be serialized as JSON.
    """
    cls = type(message)
    prefix = _wire_prefixes.get(cls)
    if prefix is None:
        name = json.dumps(wire_name_of(cls), ensure_ascii=False).encode()
        prefix = _wire_prefixes[cls] = b'{"type":' + name + b',"data":'
    try:
        data = cls.__pydantic_serializer__.to_json(message, by_alias=True)
    except PydanticSerializationError as error:
        raise TypeError(f"{cls.__name__} cannot travel as JSON: {error}") from None
    return prefix + data + b"}"


def envelope_model(
    message_type: type[Message[Any]], wire_name: str, aliases: tuple[str, ...] = ()
) -> type[BaseModel]:
    """The model of one message type's wire form: ``{"type", "data", "id", "reply_to"}``, whose
    ``type`` is ``wire_name`` or one of ``aliases``."""
    data = _wire_model(message_type)
    required = any(
        field.is_required() for name, field in message_type.model_fields.items() if name != "sender"
    )
    data_field: Any = ... if required else Field(default_factory=dict, validate_default=True)
    names = (wire_name, *aliases)
    return create_model(
        f"{message_type.__name__}Envelope",
        __config__=ConfigDict(extra="forbid", title=wire_name, frozen=True),
        __module__=message_type.__module__,
        type=(cast(Any, typing.Literal)[names], ...),
        data=(data, data_field),
        id=(_CorrelationId, None),
        reply_to=(_CorrelationId, None),
    )


def union_adapter(envelopes: list[type[BaseModel]]) -> TypeAdapter[Any]:
    # Built at run time, so the checkers see Any: pydantic's own annotation of TypeAdapter's
    # argument changed between 2.13 (type[T]) and 2.14 (TypeForm[T]).
    union = cast(Any, Union)[tuple(envelopes)]
    form: Any = cast(Any, Annotated)[union, Field(discriminator="type")]
    adapter: TypeAdapter[Any] = TypeAdapter(form)
    return adapter


# -- the protocol --------------------------------------------------------------------------------


class ActorProtocol(Generic[M_co]):
    """The protocol of an actor class as data, on the wire: ``Greeter.protocol``.

    Its entries (`ProtocolEntry`: wire name, message class, reply type, handler) are the message
    types of the actor's ``Actor[...]`` argument, in order. For an actor declared without one
    (``class Echo(Actor)``) they are the types its ``@handles`` handlers take: an actor that only
    overrides ``handle_message`` has an empty protocol, and accepts no payload.

    - `validate` / `validate_envelope` turn a JSON payload (a dict, ``str`` or ``bytes``) into the
      typed message, or raise `InvalidPayload`; the validator is built once, on first use.
    - `dump` gives any message's wire form as a JSON-ready dict; ``validate(dump(msg)) == msg``.
    - `json_schema` describes the wire form of every message, their union, and each reply.

    Iterating gives the entries; ``protocol["greet"]`` or ``protocol[Greet]`` looks one up.
    """

    def __init__(self, actor_type: type[Actor[Any]]) -> None:
        check_wire_names(actor_type)
        table = actor_type._actor_handlers
        fallback = actor_type._actor_fallback
        self.actor_type = actor_type
        self.entries: tuple[ProtocolEntry, ...] = tuple(
            ProtocolEntry(
                wire_name_of(member),
                member,
                reply_type_of(member),
                resolve_handler(table, member, fallback),
                wire_aliases_of(member),
            )
            for member in message_types_of(actor_type)
        )
        self._by_name = {entry.wire_name: entry for entry in self.entries}
        self._by_alias = {alias: entry for entry in self.entries for alias in entry.aliases}
        self._by_type = {entry.message_type: entry for entry in self.entries}

    @property
    def name(self) -> str:
        """The actor class's qualified name, ``module.Class``."""
        return _qualified(self.actor_type)

    @property
    def wire_names(self) -> tuple[str, ...]:
        """The wire names of the protocol's message types, in protocol order (their aliases,
        accepted too, are in each entry's ``aliases``)."""
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[ProtocolEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: str | type[Message[Any]]) -> ProtocolEntry:
        """The entry of a wire name (or an alias), or of a message class (its own, else its
        nearest base's).

        Raises ``KeyError`` if the protocol has none.
        """
        if isinstance(key, str):
            entry = self._by_name.get(key) or self._by_alias.get(key)
        else:
            entry = next((self._by_type[k] for k in key.__mro__ if k in self._by_type), None)
        if entry is None:
            raise KeyError(f"{self.name}'s protocol has no message type {key!r}")
        return entry

    def __repr__(self) -> str:
        return f"<ActorProtocol {self.name}: {', '.join(self.wire_names) or 'no message types'}>"

    # -- validation --------------------------------------------------------------------------

    @functools.cached_property
    def _envelopes(self) -> dict[type[BaseModel], ProtocolEntry]:
        return {
            envelope_model(entry.message_type, entry.wire_name, entry.aliases): entry
            for entry in self.entries
        }

    @functools.cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return union_adapter(list(self._envelopes))

    def validate(self, payload: Payload) -> M_co:
        """The typed message of a wire payload: ``{"type": <wire name>, "data": {...}}``, as a dict
        or as JSON text (``str`` or ``bytes``). See `validate_envelope`."""
        return self.validate_envelope(payload).message

    def validate_envelope(self, payload: Payload) -> Envelope[M_co]:
        """The typed message of a wire payload, with its ``id`` and ``reply_to`` fields.

        The message is an instance of the protocol's own class for its wire name, validated by that
        class (its validators run), with ``sender`` set to `NO_SENDER`. A dict is validated as
        Python data (pydantic's lax mode), text as JSON.

        Raises `InvalidPayload`, listing every problem and the accepted wire names, for an unknown
        or missing ``type``, a missing, extra or invalid field (in ``data`` or at the top level),
        malformed JSON, or a payload that is not a JSON object.
        """
        if not self.entries:
            raise self._invalid(
                payload, (PayloadError(("type",), f"{self.name} accepts no wire messages", "unknown_type"),)
            )
        adapter = self._adapter
        given = cast(object, payload)  # checked at run time too, for untyped callers
        if not isinstance(given, (str, bytes, bytearray, Mapping)):
            problem = f"expected a JSON object, got {type(given).__name__}"
            raise self._invalid(given, (PayloadError((), problem, "not_an_object"),))
        problems: tuple[PayloadError, ...] = ()
        envelope: Any = None
        try:
            if isinstance(given, Mapping):
                envelope = adapter.validate_python(given)
            else:
                envelope = adapter.validate_json(given)
        except ValidationError as error:
            problems = self._problems(error)
        if problems:
            # Raised outside the handler: the error keeps no context (the ValidationError holds
            # the payload), and costs bounded memory however large the payload.
            raise self._invalid(payload, problems)
        message = envelope.data
        # Validated by the wire model (a subclass that adds nothing but stricter input rules): the
        # message becomes an instance of its own class, which dispatch and equality look at.
        object.__setattr__(message, "__class__", self._envelopes[type(envelope)].message_type)
        return Envelope(message, envelope.id, envelope.reply_to)

    def _invalid(self, payload: object, problems: tuple[PayloadError, ...]) -> InvalidPayload:
        return InvalidPayload(self.name, problems, self.wire_names, _read_id(payload))

    def _problems(self, error: ValidationError) -> tuple[PayloadError, ...]:
        problems: list[PayloadError] = []
        items = error.errors(include_url=False)
        for item in items[:MAX_PROBLEMS]:
            kind, location, given = item["type"], item["loc"], cast(object, item["input"])
            context: dict[str, Any] = item.get("ctx", {})
            if kind == "union_tag_invalid":
                tag: object = context.get("tag")
                if isinstance(given, Mapping):
                    tag = cast("Mapping[str, object]", given).get("type", tag)
                problems.append(
                    PayloadError(("type",), f"unknown message type {_short(tag)}", "unknown_type")
                )
            elif kind == "union_tag_not_found":
                problems.append(
                    PayloadError(("type",), "Field required: the message's wire name", "missing_type")
                )
            elif kind == "json_invalid":
                detail = context.get("error", item["msg"])
                problems.append(PayloadError((), f"malformed JSON: {detail}", "invalid_json"))
            elif not location:
                problem = f"expected a JSON object, got {_json_type(given)}"
                problems.append(PayloadError((), problem, "not_an_object"))
            else:
                # The first location is the union member: the tag, which the payload gave already.
                problems.append(PayloadError(tuple(location[1:]), _short(item["msg"], quoted=False), kind))
        if len(items) > MAX_PROBLEMS:
            more = f"{len(items) - MAX_PROBLEMS} more problems not listed"
            problems.append(PayloadError((), more, "too_many_problems"))
        return tuple(problems)

    # -- the wire form -----------------------------------------------------------------------

    def dump(
        self,
        message: Message[Any],
        *,
        id: str | int | None = None,
        reply_to: str | int | None = None,
    ) -> dict[str, Any]:
        """The wire form of ``message`` (a member of the protocol, a reply, any message), as a
        JSON-ready dict: ``{"type": <wire name>, "data": {...}}``, plus ``id`` and ``reply_to`` when
        given. ``sender`` is left out; ``validate(dump(msg)) == msg`` for a member of the protocol.

        Raises ``TypeError`` if ``message`` is not a `Message`.
        """
        given = cast(object, message)  # checked at run time too, for untyped callers
        if not isinstance(given, Message):
            raise TypeError(f"dump() takes a Message, not {type(given).__name__}")
        wire: dict[str, Any] = json.loads(encode_wire(message))
        if id is not None:
            wire["id"] = id
        if reply_to is not None:
            wire["reply_to"] = reply_to
        return wire

    def json_schema(self) -> dict[str, Any]:
        """The protocol as one JSON Schema document (draft 2020-12), a JSON-ready dict.

        The document itself validates the payloads the actor accepts: a ``oneOf`` of the wire forms
        of its message types (discriminated by ``type``), whose definitions are in ``$defs``; an
        empty protocol is ``{"not": {}}``. The rest is metadata, under ``x-actorio``:

        - ``format``: ``2`` (this layout);
        - ``actor``: the actor class, ``module.Class``;
        - ``messages``: wire name -> ``{"class", "aliases", "payload", "reply"}``: the message
          class (``module.Class``), its other accepted wire names, the schema of its wire form,
          and the schema of the reply to an ask with it (the wire form of a reply message; for
          another reply type, the JSON form of that type). Each of those two schemas stands alone
          (it carries its own ``$defs``), so that a tool can take one out and use it as it is.
        """
        if self.entries:
            document: dict[str, Any] = self._adapter.json_schema()
        else:
            document = {"not": {}}
        messages = {
            entry.wire_name: {
                "class": _qualified(entry.message_type),
                "aliases": list(entry.aliases),
                "payload": model.model_json_schema(),
                "reply": _reply_schema(entry.reply_type),
            }
            for model, entry in self._envelopes.items()
        }
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "title": f"{self.name} protocol",
            "description": (
                f"Payloads accepted by {self.name}: one JSON object "
                '{"type": <wire name>, "data": {<fields>}}, with optional "id" and "reply_to".'
            ),
            **document,
            "x-actorio": {"format": SCHEMA_FORMAT, "actor": self.name, "messages": messages},
        }


def _reply_schema(reply_type: Any) -> dict[str, Any]:
    """The wire form of a reply of type ``reply_type``: a message's envelope, or the JSON value."""
    travels = reply_messages(reply_type)
    if travels is not None:
        messages, optional = travels
        envelopes = [envelope_model(arm, wire_name_of(arm), wire_aliases_of(arm)) for arm in messages]
        if len(envelopes) == 1:
            schema = envelopes[0].model_json_schema()
        else:
            schema = union_adapter(envelopes).json_schema()
        if optional:
            definitions = schema.pop("$defs", {})
            schema = {"anyOf": [schema, {"type": "null"}], "$defs": definitions}
        return schema
    if reply_type is None:
        return {"type": "null"}
    try:
        return TypeAdapter(reply_type).json_schema()
    except (PydanticUserError, pydantic_core.SchemaError, TypeError):
        # An unknown keyword, which a diff compares by equality: it never passes what it cannot read.
        shown = repr(reply_type)
        return {"$comment": f"a reply of type {shown} has no JSON Schema", "x-actorio-opaque": shown}


def _read_id(payload: object) -> str | int | None:
    """The ``id`` of a payload that failed validation, if it can be read: for the error report."""
    if isinstance(payload, (str, bytes, bytearray)):
        try:
            payload = pydantic_core.from_json(payload)
        except ValueError:
            return None
    if isinstance(payload, Mapping):
        value = cast("Mapping[str, object]", payload).get("id")
        if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _short(value: object, quoted: bool = True) -> str:
    """``repr(value)`` (or ``str`` of a text, unquoted), cut to ``MAX_QUOTE_CHARS`` characters: a
    problem report quotes the payload, which the sender chose."""
    text = repr(value) if quoted else str(value)
    if len(text) <= MAX_QUOTE_CHARS:
        return text
    return f"{text[:MAX_QUOTE_CHARS]}... ({len(text)} characters)"


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- Actor.protocol ------------------------------------------------------------------------------


def protocol_of_class(actor_type: type[Actor[Any]]) -> ActorProtocol[Any]:
    """The `ActorProtocol` of an actor class: made on first use, then kept on the class."""
    protocol = vars(actor_type).get(_CACHE_ATTRIBUTE)
    if protocol is None:
        protocol = ActorProtocol[Any](actor_type)
        type.__setattr__(actor_type, _CACHE_ATTRIBUTE, protocol)
    return cast("ActorProtocol[Any]", protocol)


class ProtocolAttribute:
    """``Actor.protocol``: the actor class's `ActorProtocol`, made on first access and kept on the
    class (no per-instance work). Reads the same from the class and from an instance."""

    __slots__ = ()

    def __get__(self, instance: object, owner: type[Actor[M]]) -> ActorProtocol[M]:
        return protocol_of_class(owner)
