"""The wire form of replies and errors across processes.

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
from typing import Any, TypeGuard, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from .. import ActorioException, ActorStopped, InvalidPayload, Message, PayloadError, UnhandledMessage
from ..lowlevel import (
    encode_wire,
    is_message_class,
    reply_type_of,
    union_arms,
    wire_envelope_model,
    wire_name_of,
    wire_union_adapter,
)
from ._errors import RemoteError

__all__ = ["ReplyCodec", "decode_error", "encode_error", "reply_codec"]

STATUS = "Actorio-Status"
SENDER = "Actorio-Sender"
REPLY = "Actorio-Reply"
TIMEOUT = "Actorio-Timeout"
MSG_ID = "Nats-Msg-Id"


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
