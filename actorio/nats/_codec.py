"""The wire codec: headers, request bodies, replies and errors across processes.

Owns the header names (``Actorio-Status``, ``Actorio-Sender``, ``Actorio-Reply``,
``Actorio-Timeout``, and JetStream's ``Nats-Msg-Id``), the body of a raw request (`payload_bytes`),
the ask's timeout header (`timeout_of`), the reply codec (`reply_codec`, `read_reply`) and the
error bodies (`encode_error`, `decode_error`).

A request carries the message's protocol wire form (``{"type": ..., "data": {...}}``). Its reply is
one NATS message whose ``Actorio-Status`` header says what the body is:

- ``ok``: the body is the reply as JSON (UTF-8, not ASCII-escaped): a message's wire form for a
  reply that is a `Message` (``{"type": ..., "data": {...}}``), else the JSON form of the reply
  type (``3``, ``[1, 2]``, ``null``). The asker validates it against the request's reply type.
- ``error``: the body is ``{"kind", "type", "message", ...}``: what failed at the actor, its type
  name and its text (cut to about 1,000 characters); the module and the traceback only from a node
  connected with ``debug_errors=True``.

JSON has no NaN or infinity, and pydantic writes them as ``null``, which the receiving protocol
would refuse: a message or a reply carrying one is refused where it is encoded, before anything
is sent (`encode_message`, `ReplyCodec.encode`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import traceback
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeGuard, cast, get_args

from nats.aio.msg import Msg
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import CoreSchema, PydanticSerializationError, SchemaValidator, core_schema

from .. import (
    ActorioException,
    ActorStopped,
    InvalidPayload,
    MailboxFull,
    Message,
    PayloadError,
    UnhandledMessage,
)
from ..lowlevel import (
    Payload,
    encode_wire,
    is_actor_class,
    may_hold_float,
    printable,
    refuse_non_finite,
    reply_messages,
    reply_type_of,
    wire_aliases_of,
    wire_envelope_model,
    wire_name_of,
    wire_union_adapter,
)
from ._errors import RemoteError, ReplyTooLarge

__all__ = [
    "ANSWERS",
    "ERROR",
    "MAX_ASK_WAIT",
    "MSG_ID",
    "OK",
    "REPLY",
    "SENDER",
    "STATUS",
    "TIMEOUT",
    "MessageValidator",
    "ReplyCodec",
    "StoredAsk",
    "answered",
    "decode_error",
    "encode_error",
    "encode_message",
    "fields_validator",
    "full_error",
    "message_validator",
    "payload_bytes",
    "read_reply",
    "reply_codec",
    "sendable_headers",
    "stored_at",
    "timeout_of",
    "too_large_error",
    "wire_size",
]

STATUS = "Actorio-Status"
"""A reply's header: ``ok`` or ``error`` (a stream's acknowledgement has none)."""
SENDER = "Actorio-Sender"
"""A message's header: the address its sender travels as (see ``_addresses``)."""
REPLY = "Actorio-Reply"
"""A stored ask's header: the subject its reply goes to (a stream keeps no reply subject)."""
ANSWERS = "Actorio-Answers"
"""The header of a reply to a stored ask: the stream and sequence of the ask it answers
(`answered`), set by the answering node from JetStream's own metadata. The asker takes only a
reply that names where its ask was stored (`StoredAsk`): whoever can read a stored ask's reply
address cannot answer it."""
TIMEOUT = "Actorio-Timeout"
"""An ask's header: the seconds the asker waits (the answering side stops waiting then too)."""
MSG_ID = "Nats-Msg-Id"
"""JetStream's header: the message id the stream's duplicate window is keyed by."""

OK = {STATUS: "ok"}
ERROR = {STATUS: "error"}


def payload_bytes(payload: Payload) -> bytes:
    """The body of a raw payload, sent as it is: bytes, text (UTF-8), or a mapping (as JSON)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(dict(payload), ensure_ascii=False).encode()


def wire_size(body: bytes, headers: Mapping[str, str] | None) -> int:
    """The bytes a message takes against the server's ``max_payload``: its body and its headers."""
    if not headers:
        return len(body)
    # NATS/1.0\r\n, then "key: value\r\n" for each header, then \r\n
    return len(body) + 12 + sum(len(key.encode()) + len(value.encode()) + 4 for key, value in headers.items())


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header name nats-py sends: an HTTP token (it refuses any other with ``BadHeaderError``)."""


def sendable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` (received: the server stores and delivers names no client may send, such as
    ``X(y)``) without those whose name nats-py would refuse to send again, so that a message
    handed on (moved to a dead-letter stream, replayed, forwarded) is not refused whole."""
    return {name: value for name, value in headers.items() if _HEADER_NAME.fullmatch(name)}


MAX_ASK_WAIT = 86400.0
"""The longest an answering node waits for a reply to send, whatever the asker's header says."""


def timeout_of(headers: Mapping[str, str] | None, default: float) -> float:
    """The seconds the answering side waits for an ask's reply: the asker's ``Actorio-Timeout``
    header when it is a finite number of seconds, positive and at most `MAX_ASK_WAIT` (a day);
    anything else (missing, unreadable, ``nan``, ``inf``, negative, zero, longer) is read as no
    timeout given: ``default`` (the node's ``ask_timeout``)."""
    value = headers.get(TIMEOUT) if headers else None
    if value is None or len(value) > 32:
        return default
    try:
        timeout = float(value)
    except ValueError:
        return default
    return timeout if 0 < timeout <= MAX_ASK_WAIT else default  # False for nan


_OVER_NATS = "travel over NATS"


_floats: dict[type, bool] = {}
"""Per message class, whether it may hold a float (`may_hold_float`, as its class keeps it; a
dict here is read faster than a pydantic class's ``__dict__``)."""


def encode_message(message: Message[Any]) -> bytes:
    """A message's wire form (`encode_wire`). Raises ``ValueError`` for a NaN or infinite float in
    its fields (JSON has none; see the module docstring), ``TypeError`` for a field JSON cannot
    carry: before anything is sent."""
    body = encode_wire(message)
    cls = type(message)
    floats = _floats.get(cls)
    if floats is None:
        floats = _floats[cls] = may_hold_float(cls)
    if floats:
        refuse_non_finite(message, cls.__name__, body, _OVER_NATS)
    return body


WireMessages = Sequence[tuple[type[Message[Any]], str, tuple[str, ...]]]
"""Message classes with their wire names and aliases."""


def fields_validator(messages: WireMessages) -> tuple[SchemaValidator, dict[str, type[Message[Any]]]]:
    """A validator of a payload in the wire form of one of ``messages``, whose result is the dict of
    its envelope's fields (``"type"``, ``"data"``, ``"id"``, ``"reply_to"``), and the message
    class of each wire name (a payload's ``"type"``), which its ``data`` (an instance of the wire
    model) becomes.

    The same field schemas and refusals (extra fields too) as the union of the wire envelope
    models (``wire_union_adapter``), as typed dicts: no envelope instance is made for a payload
    that only its ``data`` is wanted from (0.2 us of the 1.3 us a remote tell's validation
    cost). An envelope whose schema has another shape than pydantic's (a model, maybe inside its
    definitions), or a wire name two classes claim (``TypeError``, from pydantic), goes through
    the envelope union itself."""
    envelopes = [wire_envelope_model(cls, name, aliases) for cls, name, aliases in messages]
    classes = {tag: cls for cls, name, aliases in messages for tag in (name, *aliases)}
    config = core_schema.CoreConfig(title=" | ".join(envelope.__name__ for envelope in envelopes))
    choices: dict[Hashable, CoreSchema] = {}
    definitions: dict[str, CoreSchema] = {}  # by ref: messages share them
    for envelope in envelopes:
        schema: Any = envelope.__pydantic_core_schema__
        if schema["type"] == "definitions":
            definitions.update((each["ref"], each) for each in schema["definitions"])
            schema = schema["schema"]
        names = get_args(envelope.model_fields["type"].annotation)
        if schema["type"] != "model" or schema["schema"]["type"] != "model-fields" or choices.keys() & names:
            union = wire_union_adapter(envelopes).core_schema
            validator = SchemaValidator(
                core_schema.no_info_after_validator_function(_fields_of, union), config
            )
            return validator, classes
        fields = {
            name: core_schema.typed_dict_field(field["schema"], required=field["schema"]["type"] != "default")
            for name, field in schema["schema"]["fields"].items()
        }
        typed = core_schema.typed_dict_schema(fields, extra_behavior="forbid")
        choices.update((name, typed) for name in names)
    union = core_schema.tagged_union_schema(choices, discriminator="type")
    return SchemaValidator(core_schema.definitions_schema(union, list(definitions.values())), config), classes


def _fields_of(envelope: BaseModel) -> Mapping[str, Any]:
    return envelope.__dict__


class MessageValidator:
    """Validates the wire payloads one actor class receives, as its protocol's
    ``validate`` does (the same wire models: each message validated by its own class, extra
    fields refused), with one call into pydantic and nothing around it: a remote tell's payload
    went through five Python layers of ``ActorProtocol.validate_envelope`` before.

    A payload the wire models refuse is validated again by the protocol itself, which raises
    `InvalidPayload` listing every problem: only an invalid payload pays twice.
    """

    def __init__(self, actor_type: type[Any]) -> None:
        self._protocol = actor_type.protocol
        entries = list(self._protocol)
        self._validate_json: Any = None
        if entries:
            validator, self._classes = fields_validator(
                [(entry.message_type, entry.wire_name, entry.aliases) for entry in entries]
            )
            self._validate_json = validator.validate_json

    def validate(self, data: bytes) -> Message[Any]:
        """The typed message of a wire payload (its sender `NO_SENDER`); `InvalidPayload` if it is
        not one of the protocol's messages."""
        if self._validate_json is not None:
            try:
                fields = self._validate_json(data)
            except ValidationError:
                pass  # the protocol says why, below
            else:
                message: Message[Any] = fields["data"]
                # The wire model is a subclass of the message class that only refuses extra fields:
                # the message becomes an instance of its own class, as ActorProtocol.validate does.
                object.__setattr__(message, "__class__", self._classes[fields["type"]])
                return message
        refused: Message[Any] = self._protocol.validate(data)  # raises InvalidPayload
        return refused


def message_validator(actor_type: type[Any]) -> MessageValidator:
    """The validator of what ``actor_type`` receives, made once per actor class."""
    validator: MessageValidator | None = actor_type.__dict__.get("_actorio_nats_validator")
    if validator is None:
        assert is_actor_class(actor_type)
        validator = MessageValidator(actor_type)
        type.__setattr__(actor_type, "_actorio_nats_validator", validator)
    return validator


def _is_message(value: object) -> TypeGuard[Message[Any]]:
    return isinstance(value, Message)


class ReplyCodec:
    """Encodes and validates the replies of one reply type."""

    def __init__(self, reply_type: Any) -> None:
        self.reply_type = reply_type
        # A reply typed by messages (and maybe None) travels as their wire form, validated by the
        # same wire models as requests; anything else as the JSON form of its type.
        travels = reply_messages(reply_type)
        self._messages = travels is not None
        if travels is not None:
            messages, self._optional = travels
            validator, self._classes = fields_validator(
                [(arm, wire_name_of(arm), wire_aliases_of(arm)) for arm in messages]
            )
            self._validate_fields = validator.validate_json
        else:
            self._adapter: TypeAdapter[Any] = TypeAdapter(Any if reply_type is None else reply_type)
            self._none = reply_type is None
            self._floats = may_hold_float(Any if reply_type is None else reply_type)

    def encode(self, value: Any) -> bytes:
        """The reply's JSON (UTF-8). Raises ``TypeError`` if ``value`` is not of the reply type (or
        not JSON), ``ValueError`` if it carries a NaN or infinite float (see the module docstring)."""
        if self._messages:
            if value is None and self._optional:
                return b"null"
            if not _is_message(value):
                raise TypeError(f"expected a reply of type {self.reply_type!r}, got {type(value).__name__}")
            return encode_message(value)
        try:
            body = self._adapter.dump_json(value, warnings="error")
        except PydanticSerializationError as error:
            raise TypeError(f"expected a reply of type {self.reply_type!r}: {error}") from None
        if self._floats:
            refuse_non_finite(value, "the reply", body, _OVER_NATS)
        return body

    def decode(self, body: bytes) -> Any:
        """The typed reply of a reply's JSON. Raises ``ValueError`` if it is not of the reply type."""
        try:
            if self._messages:
                if self._optional and body.strip() == b"null":
                    return None
                fields = self._validate_fields(body)
                message = cast("Message[Any]", fields["data"])
                # The wire model is a subclass of the message class that only refuses extra fields:
                # the reply becomes an instance of its own class, as ActorProtocol.validate does.
                object.__setattr__(message, "__class__", self._classes[fields["type"]])
                return message
            return self._adapter.validate_json(body)
        except ValidationError as error:
            raise ValueError(f"invalid reply (expected {self.reply_type!r}): {error}") from None


@functools.lru_cache(maxsize=1024)
def _codec_of_type(reply_type: Any) -> ReplyCodec:
    return ReplyCodec(reply_type)


def reply_codec(message_type: type[Message[Any]]) -> ReplyCodec:
    """The codec of the replies to ``message_type``, made once per message class."""
    codec: ReplyCodec | None = message_type.__dict__.get("_actorio_nats_codec")
    if codec is None:
        try:
            codec = _codec_of_type(reply_type_of(message_type))
        except TypeError:  # an unhashable reply annotation: made each time
            codec = ReplyCodec(reply_type_of(message_type))
        type.__setattr__(message_type, "_actorio_nats_codec", codec)
    return codec


def read_reply(
    identifier: str, headers: Mapping[str, str] | None, body: bytes, message: Message[Any] | None
) -> Any:
    """What the reply to an ask of ``identifier`` carries: the reply to ``message``, validated
    against its reply type, or for a raw payload (``message`` is ``None``) the JSON-decoded body.

    Raises the error an ``error`` reply carries (see `decode_error`); `RemoteError` (type name
    ``InvalidReply``) for a reply not of the reply type (or not JSON), or whose status is neither
    ``ok`` nor ``error``; ``ValueError`` for a stream's acknowledgement instead of a reply (the
    name has a durable mailbox: the ask was stored).
    """
    status = (headers or {}).get(STATUS)
    if status is None and _is_stream_ack(body):
        raise ValueError(
            f"{identifier} is published with a durable mailbox: ask it through "
            "node.ref(name, durable=True) (this message was stored, and its reply is lost)"
        )
    if status == "error":
        raise decode_error(body, identifier, Message() if message is None else message)
    if status != "ok":
        why = f"a reply whose {STATUS} is {'missing' if status is None else repr(_cut(status, 20))}"
        raise RemoteError(identifier, "InvalidReply", __name__, why, "")
    try:
        if message is None:
            return json.loads(body)
        return reply_codec(type(message)).decode(body)
    except (ValueError, RecursionError) as error:
        raise RemoteError(identifier, "InvalidReply", __name__, _cut(str(error), MESSAGE_CHARS), "") from None


def _is_stream_ack(body: bytes) -> bool:
    """Whether a reply without a status is a JetStream acknowledgement: ``{"stream", "seq", ...}``."""
    try:
        data: object = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "stream" in data and "seq" in data


# -- errors --------------------------------------------------------------------------------------

MESSAGE_CHARS = 1000
"""The longest error text an error reply carries."""
TRACEBACK_CHARS = 16000
"""The longest traceback an error reply carries (with ``debug_errors``: its last lines)."""
_FIELD_CHARS = 200
"""The longest path, problem or name an invalid payload's error reply carries for each problem."""
_MAX_PROBLEMS = 20
_MAX_NAMES = 50
_NAME_CHARS = 100


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _text_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ fails still gets its reply
        return f"<{type(error).__name__} that cannot be printed>"


def encode_error(error: BaseException, actor: str, *, debug: bool = False) -> bytes:
    """The error body of a failed request: its kind, the exception's type name and its text (cut
    to `MESSAGE_CHARS`); for an invalid payload, its problems and the accepted wire names (each
    cut). With ``debug`` (``Node.connect(..., debug_errors=True)``), also the actor, the
    exception's module and its traceback (the last `TRACEBACK_CHARS` characters): they tell the
    asker where the node's code is, so they travel only when asked for."""
    body: dict[str, Any] = {"kind": "error", "type": type(error).__qualname__}
    if isinstance(error, InvalidPayload):
        body.update(
            kind="invalid_payload",
            actor=_cut(error.actor, _FIELD_CHARS),
            errors=[
                {
                    "path": _cut(problem.path, _FIELD_CHARS),
                    "message": _cut(problem.message, _FIELD_CHARS),
                    "kind": _cut(problem.kind, _FIELD_CHARS),
                }
                for problem in error.errors[:_MAX_PROBLEMS]
            ],
            accepted=[_cut(name, _NAME_CHARS) for name in error.accepted[:_MAX_NAMES]],
        )
        if isinstance(error.id, str):
            body["id"] = _cut(error.id, _FIELD_CHARS)
        elif isinstance(error.id, int) and -(2**63) <= error.id < 2**64:
            body["id"] = error.id
    elif isinstance(error, ReplyTooLarge):
        body.update(kind="too_large", size=error.size, limit=error.limit)
    elif isinstance(error, RemoteError):
        # Raised by a remote actor this handler asked: pass on the original.
        body.update(type=error.type_name, message=_cut(error.remote_message, MESSAGE_CHARS))
    else:
        body["message"] = _cut(_text_of(error), MESSAGE_CHARS)
        if isinstance(error, ActorStopped):
            body["kind"] = "stopped"
        elif isinstance(error, UnhandledMessage):
            body["kind"] = "unhandled"
    if debug:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        module = type(error).__module__
        if isinstance(error, RemoteError):
            trace, module = error.remote_traceback + "\n" + trace, error.module
        body.update(actor=actor, module=module, traceback=trace[-TRACEBACK_CHARS:])
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def too_large_error(size: int, limit: int) -> bytes:
    """The error body sent instead of a reply of ``size`` bytes, larger than ``limit`` (the
    server's ``max_payload``): `ReplyTooLarge` at the asker."""
    return json.dumps({"kind": "too_large", "type": "ReplyTooLarge", "size": size, "limit": limit}).encode()


def full_error(capacity: int) -> bytes:
    """The error body sent to an asker whose request was dropped on arrival, the publication's
    pending limit (``capacity`` messages) being full: `MailboxFull` at the asker."""
    return json.dumps({"kind": "full", "type": "MailboxFull", "capacity": capacity}).encode()


_CUT_ROOM = 40
"""What `_cut`'s note (``... (N characters)``) adds to a text: an error body's field this much over
its limit was cut by the node that sent it, and is not cut again."""


def _string(data: Mapping[str, object], key: str, limit: int, default: str = "", keep: str = "") -> str:
    """``data[key]`` if it is a string, within ``limit`` characters as `encode_error` makes them
    (an error body comes from the wire: another sender's are not bounded), its characters that
    are not printable escaped but those in ``keep`` (it ends in logs and tracebacks); else
    ``default``."""
    value = data.get(key)
    if not isinstance(value, str):
        return default
    return printable(value if len(value) <= limit + _CUT_ROOM else _cut(value, limit), keep)


def _integer(data: Mapping[str, object], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _problems(entries: object) -> tuple[PayloadError, ...]:
    if not isinstance(entries, list):
        return ()
    problems: list[PayloadError] = []
    for entry in cast("list[object]", entries)[:_MAX_PROBLEMS]:
        if isinstance(entry, dict):
            fields = cast("dict[str, object]", entry)
            path = _string(fields, "path", _FIELD_CHARS)
            problems.append(
                PayloadError(
                    tuple(path.split(".")) if path else (),
                    _string(fields, "message", _FIELD_CHARS),
                    _string(fields, "kind", _FIELD_CHARS),
                )
            )
    return tuple(problems)


def decode_error(body: bytes, identifier: str, message: Message[Any]) -> ActorioException:
    """The exception to raise at the asker for an error body. Whatever the body (not JSON, not an
    object, fields of the wrong types, fields longer or more numerous than `encode_error` makes
    them: cut to its limits), this returns an exception: a body it cannot read is a `RemoteError`
    of type name ``InvalidReply``."""
    try:
        data: object = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or not isinstance(cast("dict[str, object]", data).get("kind"), str):
        return RemoteError(identifier, "InvalidReply", "", f"unreadable error reply: {body[:200]!r}", "")
    fields = cast("dict[str, object]", data)
    kind = fields["kind"]
    if kind == "invalid_payload":
        accepted = fields.get("accepted")
        names = (
            tuple(
                name if len(name) <= _NAME_CHARS + _CUT_ROOM else _cut(name, _NAME_CHARS)
                for name in cast("list[object]", accepted)[:_MAX_NAMES]
                if isinstance(name, str)
            )
            if isinstance(accepted, list)
            else ()
        )
        raw_id = fields.get("id")
        payload_id = raw_id if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
        return InvalidPayload(
            _string(fields, "actor", _FIELD_CHARS, identifier),
            _problems(fields.get("errors")),
            names,
            payload_id,
        )
    if kind == "stopped":
        return ActorStopped(identifier, message)
    if kind == "unhandled":
        return UnhandledMessage(message, identifier)
    if kind == "too_large":
        return ReplyTooLarge(identifier, _integer(fields, "size"), _integer(fields, "limit"))
    if kind == "full":
        return MailboxFull(identifier, _integer(fields, "capacity"))
    return RemoteError(
        identifier,
        _string(fields, "type", _FIELD_CHARS, "Exception"),
        _string(fields, "module", _FIELD_CHARS),
        _string(fields, "message", MESSAGE_CHARS, keep="\n\t"),
        _string(fields, "traceback", TRACEBACK_CHARS, keep="\n\t"),
    )


def stored_at(stream: str, sequence: int) -> str:
    """The `ANSWERS` value of the ask stored in ``stream`` at ``sequence``."""
    return f"{stream} {sequence}"


def answered(msg: Msg) -> str:
    """The `ANSWERS` value of a reply to ``msg``, a stored ask JetStream delivered."""
    metadata = msg.metadata
    return stored_at(metadata.stream, metadata.sequence.stream)


class StoredAsk:
    """The reply awaited by one stored ask (a durable name's, a durable entity's), stored in
    ``stream``: `future` gets the first reply whose `ANSWERS` header names the place the
    stream's acknowledgement gave (`stored`).

    A reply address travels in the stored ask, where whoever may read the stream reads it, and
    a node answers any message with a reply subject: such a reply, sent through another ask
    (core, or stored elsewhere), does not name this ask's place (a node sets it from
    JetStream's metadata only), and is dropped. Replies that come before the acknowledgement
    wait for it if they name a place in ``stream``, one per place and `EARLY` places at most (a
    reply there costs a stored message, and an acknowledgement is late only when it was lost);
    any other is dropped at once."""

    __slots__ = ("future", "place", "_stream", "_early")

    EARLY = 16
    """The places in the stream whose replies are kept while the ask's own is not known yet."""

    def __init__(self, future: asyncio.Future[Msg], stream: str) -> None:
        self.future = future
        self.place: str | None = None
        self._stream = f"{stream} "
        self._early: dict[str, Msg] = {}

    def offer(self, msg: Msg) -> None:
        """A message on this ask's reply address: the reply, if it answers this ask."""
        if self.future.done():
            return
        answers = (msg.headers or {}).get(ANSWERS)
        if answers is None:
            return
        if self.place is None:
            if answers.startswith(self._stream) and len(self._early) < self.EARLY:
                self._early.setdefault(answers, msg)
        elif answers == self.place:
            self.future.set_result(msg)

    def stored(self, place: tuple[str, int]) -> None:
        """The stream stored the ask (its stream and sequence): a reply that came before may be
        taken now."""
        self.place = stored_at(*place)
        early, self._early = self._early, {}
        found = early.get(self.place)
        if found is not None:
            self.offer(found)
