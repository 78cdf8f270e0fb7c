"""The wire codec: headers, request bodies, replies and errors across processes.

Owns the header names (``Actorio-Status``, ``Actorio-Sender``, ``Actorio-Reply``,
``Actorio-Timeout``, and JetStream's ``Nats-Msg-Id``), the body of a raw request (`payload_bytes`),
the ask's timeout header (`timeout_of`), the reply codec (`reply_codec`, `read_reply`) and the
error bodies (`encode_error`, `decode_error`).

A request carries the message's protocol wire form (``{"type": ..., "data": {...}}``). Its reply is
one NATS message whose ``Actorio-Status`` header says what the body is:

- ``ok``: the body is the reply as JSON: a message's wire form for a reply that is a `Message`
  (``{"type": ..., "data": {...}}``), else the JSON form of the reply type (``3``, ``[1, 2]``,
  ``null``). The asker validates it against the request's reply type.
- ``error``: the body is ``{"kind", "type", "message", "traceback", ...}``: what failed at the actor.
"""

from __future__ import annotations

import functools
import json
import traceback
from collections.abc import Mapping
from typing import Any, TypeGuard, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from .. import ActorioException, ActorStopped, InvalidPayload, Message, PayloadError, UnhandledMessage
from ..lowlevel import (
    Payload,
    encode_wire,
    is_message_class,
    reply_type_of,
    union_arms,
    wire_envelope_model,
    wire_name_of,
    wire_union_adapter,
)
from ._errors import RemoteError

__all__ = [
    "ERROR",
    "MSG_ID",
    "OK",
    "REPLY",
    "SENDER",
    "STATUS",
    "TIMEOUT",
    "ReplyCodec",
    "decode_error",
    "encode_error",
    "payload_bytes",
    "read_reply",
    "reply_codec",
    "timeout_of",
]

STATUS = "Actorio-Status"
"""A reply's header: ``ok`` or ``error`` (a stream's acknowledgement has none)."""
SENDER = "Actorio-Sender"
"""A message's header: the address its sender travels as (see ``_addresses``)."""
REPLY = "Actorio-Reply"
"""A stored ask's header: the subject its reply goes to (a stream keeps no reply subject)."""
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
    return json.dumps(dict(payload)).encode()


def timeout_of(headers: Mapping[str, str] | None) -> float | None:
    """The seconds an ask's sender waits (its ``Actorio-Timeout`` header), or ``None`` when the
    header is missing, unreadable, or not positive."""
    value = headers.get(TIMEOUT) if headers else None
    if value is None:
        return None
    try:
        timeout = float(value)
    except ValueError:
        return None
    return timeout if timeout > 0 else None


def _is_message(value: object) -> TypeGuard[Message[Any]]:
    return isinstance(value, Message)


class ReplyCodec:
    """Encodes and validates the replies of one reply type."""

    def __init__(self, reply_type: Any) -> None:
        self.reply_type = reply_type
        arms = union_arms(reply_type)
        messages = [arm for arm in arms if is_message_class(arm)]
        # A reply typed by messages (and maybe None) travels as their wire form, validated by the
        # same wire models as requests; anything else as the JSON form of its type.
        self._messages = bool(messages) and len(messages) + (type(None) in arms) == len(arms)
        if self._messages:
            envelopes = [wire_envelope_model(arm, wire_name_of(arm)) for arm in messages]
            self._optional = type(None) in arms
            self._envelope_adapter = wire_union_adapter(envelopes)
        else:
            self._adapter: TypeAdapter[Any] = TypeAdapter(Any if reply_type is None else reply_type)
            self._none = reply_type is None

    def encode(self, value: Any) -> bytes:
        """The reply's JSON. Raises ``TypeError`` if ``value`` is not of the reply type."""
        if self._messages:
            if value is None and self._optional:
                return b"null"
            if not _is_message(value):
                raise TypeError(f"expected a reply of type {self.reply_type!r}, got {type(value).__name__}")
            return encode_wire(value)
        try:
            return self._adapter.dump_json(value, warnings="error")
        except PydanticSerializationError as error:
            raise TypeError(f"expected a reply of type {self.reply_type!r}: {error}") from None

    def decode(self, body: bytes) -> Any:
        """The typed reply of a reply's JSON. Raises ``ValueError`` if it is not of the reply type."""
        try:
            if self._messages:
                if self._optional and body.strip() == b"null":
                    return None
                envelope = cast(BaseModel, self._envelope_adapter.validate_json(body))
                message = cast(Message[Any], envelope.__dict__["data"])
                # The wire model is a subclass of the message class that only refuses extra fields:
                # the reply becomes an instance of its own class, as ActorProtocol.validate does.
                object.__setattr__(message, "__class__", type(message).__mro__[1])
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
    ``InvalidReply``) for a reply not of the reply type; ``ValueError`` for a stream's
    acknowledgement instead of a reply (the name has a durable mailbox: the ask was stored).
    """
    status = (headers or {}).get(STATUS)
    if status is None:
        raise ValueError(
            f"{identifier} is published with a durable mailbox: ask it through "
            "node.ref(name, durable=True) (this message was stored, and its reply is lost)"
        )
    if status == "error":
        raise decode_error(body, identifier, Message() if message is None else message)
    if message is None:
        return json.loads(body)
    try:
        return reply_codec(type(message)).decode(body)
    except ValueError as error:
        raise RemoteError(identifier, "InvalidReply", __name__, str(error), "") from None


# -- errors --------------------------------------------------------------------------------------


def encode_error(error: BaseException, actor: str) -> bytes:
    """The error body of a failed request: its kind, the exception's type name, text and traceback."""
    body: dict[str, Any] = {
        "kind": "error",
        "actor": actor,
        "type": type(error).__qualname__,
        "module": type(error).__module__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }
    if isinstance(error, InvalidPayload):
        body.update(kind="invalid_payload", errors=error.to_dict()["errors"], accepted=list(error.accepted))
        body["actor"] = error.actor
        body["id"] = error.id
    elif isinstance(error, ActorStopped):
        body["kind"] = "stopped"
    elif isinstance(error, UnhandledMessage):
        body["kind"] = "unhandled"
    elif isinstance(error, RemoteError):
        # Raised by a remote actor this handler asked: pass on the original.
        body.update(type=error.type_name, module=error.module, message=error.remote_message)
        body["traceback"] = error.remote_traceback + "\n" + body["traceback"]
    return json.dumps(body, separators=(",", ":")).encode()


def decode_error(body: bytes, identifier: str, message: Message[Any]) -> ActorioException:
    """The exception to raise at the asker for an error body."""
    try:
        data = json.loads(body)
        kind = str(data["kind"])
    except (ValueError, KeyError, TypeError):
        return RemoteError(identifier, "InvalidReply", "", f"unreadable error reply: {body[:200]!r}", "")
    if kind == "invalid_payload":
        errors = tuple(
            PayloadError(tuple(str(e["path"]).split(".")) if e["path"] else (), e["message"], e["kind"])
            for e in data.get("errors", [])
        )
        return InvalidPayload(str(data.get("actor", identifier)), errors, tuple(data.get("accepted", [])))
    if kind == "stopped":
        return ActorStopped(identifier, message)
    if kind == "unhandled":
        return UnhandledMessage(message, identifier)
    return RemoteError(
        identifier,
        str(data.get("type", "Exception")),
        str(data.get("module", "")),
        str(data.get("message", "")),
        str(data.get("traceback", "")),
    )
