"""An AsyncAPI 3.0 document of what a process publishes on NATS, for teams outside Python.

A process that runs ``await node.publish("greeter", Greeter())`` serves the subject
``<prefix>.actor.greeter``: `asyncapi_document` describes such publications in the AsyncAPI 3.0
format, from which standard tools generate clients, documentation and validators:

- one **channel** per publication: its address is the subject, its messages are the wire forms of
  the actor's protocol (``{"type": <wire name>, "data": {...}, "id", "reply_to"}``);
- one **operation** per message type: ``receive`` (the process receives what clients send; with
  ``action="send"``, the document describes a client instead), with a **reply** when the message's
  reply type is not ``None`` (NATS request/reply: the reply goes to the request's reply subject,
  so the reply channel's address is dynamic). Every message may also be sent without waiting for
  a reply. The NATS binding names the queue group (the subject), which makes the publishers a pool;
- the **messages**: each request's payload schema, its headers (``Actorio-Sender``,
  ``Actorio-Timeout``, ``Actorio-Batch``), each reply (``Actorio-Status: ok``) and the error
  reply every request may get instead (``Actorio-Status: error``, ``{"kind", "type", "message", ...}``);
- the **schemas** of the messages' fields, in ``components.schemas``, shared between messages.

``python -m actorio asyncapi module:Actor=name ... [--prefix P] [--server nats://host:4222]``
prints the document as JSON.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from ._message import reply_messages
from ._protocol import envelope_model, message_types_of, reply_type_of, wire_aliases_of, wire_name_of

if TYPE_CHECKING:
    from ._actor import Actor
    from ._message import Message

__all__ = ["ASYNCAPI_VERSION", "Publication", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
"""The AsyncAPI version of the documents made here."""

NATS_BINDING_VERSION = "0.1.0"

_ID = re.compile(r"[^\w.\-]")
"""What an AsyncAPI component or channel key may not contain (keys match ``^[\\w\\d.\\-_]+$``)."""
_SUBJECT_TOKEN = re.compile(r"^[\w\-]+(\.[\w\-]+)*$")

_REQUEST_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Actorio-Sender": {
            "type": "string",
            "description": "The address of the message's sender (a subject): where the actor tells "
            "its answers when it tells the sender rather than replying.",
        },
        "Actorio-Timeout": {
            "type": "string",
            "description": "An ask's timeout in seconds, a decimal number: the actor's side stops waiting "
            "for the reply then too.",
        },
        "Actorio-Batch": {
            "type": "string",
            "description": "A batch of tells (never a request): the payload is that many messages, 2 to 256, "
            "one a line, joined by newlines. actorio's batched references send them; a client need not.",
        },
    },
}
_REPLY_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["Actorio-Status"],
    "properties": {"Actorio-Status": {"type": "string", "const": "ok"}},
}
_ERROR_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["Actorio-Status"],
    "properties": {"Actorio-Status": {"type": "string", "const": "error"}},
}
_ERROR_PAYLOAD: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "What failed instead of a reply. Without debug errors, no traceback, module or path.",
    "required": ["kind", "type"],
    "properties": {
        "kind": {
            "type": "string",
            "enum": ["error", "invalid_payload", "stopped", "unhandled", "too_large", "full"],
            "description": "error: the handler raised; invalid_payload: the protocol refused the request; "
            "stopped, unhandled: the actor stopped or has no handler; too_large: the reply exceeded the "
            "server's max_payload; full: the request was dropped on arrival (MailboxFull).",
        },
        "type": {"type": "string", "description": "The exception's type name."},
        "message": {"type": "string", "description": "The exception's text, cut to about 1,000 characters."},
        "errors": {
            "type": "array",
            "description": "invalid_payload: each problem.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "message": {"type": "string"},
                    "kind": {"type": "string"},
                },
            },
        },
        "accepted": {"type": "array", "items": {"type": "string"}, "description": "The accepted wire names."},
        "id": {"type": ["string", "integer"], "description": "The request's id, when it had one."},
        "size": {"type": "integer"},
        "limit": {"type": "integer"},
        "capacity": {"type": "integer"},
        "actor": {"type": "string"},
        "module": {"type": "string"},
        "traceback": {"type": "string"},
    },
}


@dataclass(frozen=True)
class Publication:
    """An actor class published under ``name`` (``node.publish(name, ...)``)."""

    name: str
    actor: type[Actor[Any]]


def _key(text: str) -> str:
    return _ID.sub("_", text) or "_"


def _unique(key: str, taken: set[str]) -> str:
    candidate, number = key, 2
    while candidate in taken:
        candidate, number = f"{key}_{number}", number + 1
    taken.add(candidate)
    return candidate


def _reply_form(reply_type: Any) -> Any:
    """What validates a reply of ``reply_type`` on the wire (see `reply_messages`): its messages'
    wire forms, else the type itself (``None`` is JSON ``null``)."""
    travels = reply_messages(reply_type)
    if travels is None:
        return reply_type
    messages, optional = travels
    envelopes = [envelope_model(arm, wire_name_of(arm), wire_aliases_of(arm)) for arm in messages]
    form: Any = envelopes[0]
    if len(envelopes) > 1:
        form = cast(Any, Annotated)[cast(Any, Union)[tuple(envelopes)], Field(discriminator="type")]
    if optional:
        form = cast(Any, typing.Optional)[form]
    return form


def _adapter(form: Any) -> TypeAdapter[Any] | None:
    """A type adapter whose JSON Schema can be made, or ``None``."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(form)
        adapter.json_schema()
    except Exception:  # a type with no JSON Schema (pydantic raises several kinds)
        return None
    return adapter


def _clean(schema: Any) -> Any:
    """An AsyncAPI Schema Object from pydantic's JSON Schema: ``discriminator`` is a property name
    in AsyncAPI, an object in pydantic's output (OpenAPI's); the ``oneOf`` of ``const`` types
    discriminates already, so it is left out."""
    if isinstance(schema, Mapping):
        items = cast("Mapping[str, Any]", schema).items()
        return {
            key: _clean(value)
            for key, value in items
            if not (key == "discriminator" and isinstance(value, Mapping))
        }
    if isinstance(schema, list):
        return [_clean(item) for item in cast("Iterable[Any]", schema)]
    return schema


def _server(url: str, index: int) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL (nats://host:4222)")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return f"nats{index}" if index else "nats", {
        "host": host,
        "protocol": parts.scheme,
        "description": f"A NATS server ({url}) the publishing processes connect to.",
    }


def asyncapi_document(
    publications: Mapping[str, type[Actor[Any]]] | Iterable[Publication],
    *,
    prefix: str = "actorio",
    title: str = "actorio publications",
    version: str = "1.0.0",
    description: str | None = None,
    servers: Sequence[str] = (),
    action: Literal["receive", "send"] = "receive",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) of ``publications``: publication name -> actor
    class, or `Publication` records, published by a node whose subject prefix is ``prefix``.

    ``action`` is the point of view: ``receive`` describes the publishing process (it receives the
    messages, and replies), ``send`` a client of it. ``servers`` are NATS URLs. See the module's
    documentation for what the document holds. Raises ``ValueError`` for a publication name or a
    prefix that is not a valid subject, or a server that is not a URL.
    """
    records: list[Publication] = []
    if isinstance(publications, Mapping):
        # pyright narrows the Iterable[Publication] arm to a Mapping too, of unknown keys.
        for name, actor in publications.items():  # pyright: ignore[reportUnknownVariableType]
            records.append(Publication(name, actor))  # pyright: ignore[reportArgumentType, reportUnknownArgumentType]
    else:
        records.extend(publications)
    if not _SUBJECT_TOKEN.match(prefix):
        raise ValueError(f"{prefix!r} is not a subject prefix")
    # One pydantic JSON Schema generation for every payload and reply, so that the models they
    # share are one component each, and names that clash are told apart.
    inputs: list[tuple[tuple[str, int, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    plans: list[tuple[Publication, str, list[tuple[type[Message[Any]], bool]]]] = []
    channel_keys: set[str] = set()
    for index, record in enumerate(records):
        if not _SUBJECT_TOKEN.match(record.name):
            raise ValueError(f"{record.name!r} is not a publication name (a subject: letters, digits, _ - .)")
        members: list[tuple[type[Message[Any]], bool]] = []
        for member in message_types_of(record.actor):
            envelope = envelope_model(member, wire_name_of(member), wire_aliases_of(member))
            inputs.append(
                ((record.name, index, f"payload:{wire_name_of(member)}"), "validation", TypeAdapter(envelope))
            )
            reply = reply_type_of(member)
            has_reply = reply is not None
            if has_reply:
                adapter = _adapter(_reply_form(reply))
                if adapter is not None:
                    inputs.append(
                        ((record.name, index, f"reply:{wire_name_of(member)}"), "validation", adapter)
                    )
            members.append((member, has_reply))
        plans.append((record, _unique(_key(record.name), channel_keys), members))
    generated, definitions = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
    schemas = {key: schema for (key, _mode), schema in generated.items()}

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {
        "actorio.error": {
            "name": "error",
            "title": "Error reply",
            "contentType": "application/json",
            "headers": _ERROR_HEADERS,
            "payload": _ERROR_PAYLOAD,
        }
    }
    taken = set(messages)
    for index, (record, channel, members) in enumerate(plans):
        name = record.name
        subject = f"{prefix}.actor.{name}"
        channel_messages: dict[str, Any] = {}
        reply_messages: dict[str, Any] = {"error": {"$ref": "#/components/messages/actorio.error"}}
        names: set[str] = set()
        for member, has_reply in members:
            wire = wire_name_of(member)
            key = _unique(_key(wire), names)
            component = _unique(f"{channel}.{key}", taken)
            aliases = wire_aliases_of(member)
            messages[component] = {
                "name": wire,
                "title": member.__name__,
                "contentType": "application/json",
                "headers": _REQUEST_HEADERS,
                "payload": _clean(schemas[(name, index, f"payload:{wire}")]),
                **({"description": _describe(member, aliases)} if member.__doc__ or aliases else {}),
            }
            channel_messages[key] = {"$ref": f"#/components/messages/{component}"}
            operation: dict[str, Any] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel}"},
                "title": f"{'Ask' if has_reply else 'Tell'} {name}: {wire}",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{key}"}],
                "bindings": {"nats": {"queue": subject, "bindingVersion": NATS_BINDING_VERSION}},
            }
            if has_reply:
                reply_key = _unique(f"{key}.reply", names)
                reply_component = _unique(f"{component}.reply", taken)
                reply_schema = schemas.get((name, index, f"reply:{wire}"))
                messages[reply_component] = {
                    "name": f"{wire} reply",
                    "title": f"The reply to {member.__name__}",
                    "contentType": "application/json",
                    "headers": _REPLY_HEADERS,
                    "payload": _clean(reply_schema)
                    if reply_schema is not None
                    else {
                        "description": f"a reply of type {reply_type_of(member)!r}, which has no JSON Schema"
                    },
                }
                reply_messages[reply_key] = {"$ref": f"#/components/messages/{reply_component}"}
                operation["reply"] = {
                    "channel": {"$ref": f"#/channels/{channel}.reply"},
                    "messages": [
                        {"$ref": f"#/channels/{channel}.reply/messages/{reply_key}"},
                        {"$ref": f"#/channels/{channel}.reply/messages/error"},
                    ],
                }
            operations[_unique(f"{channel}.{key}", set(operations))] = operation
        channels[channel] = {
            "address": subject,
            "title": name,
            "description": f"{record.actor.__module__}.{record.actor.__qualname__}, published as {name!r}: "
            f"every process that publishes it is in the queue group {subject!r}, so each message goes to "
            "one of them.",
            "messages": channel_messages,
        }
        channels[f"{channel}.reply"] = {
            "address": None,
            "title": f"Replies of {name}",
            "description": "The request's reply subject (a NATS inbox), chosen by the asker.",
            "messages": reply_messages,
        }
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description
            or (
                "Actors published on NATS with actorio. Each message is one JSON object "
                '{"type": <wire name>, "data": {<fields>}}, with optional "id" and "reply_to".'
            ),
        },
        "defaultContentType": "application/json",
    }
    if servers:
        document["servers"] = dict(_server(url, index) for index, url in enumerate(servers))
    document["channels"] = channels
    document["operations"] = operations
    document["components"] = {"schemas": _clean(definitions.get("$defs", {})), "messages": messages}
    return document


def _describe(member: type[Message[Any]], aliases: tuple[str, ...]) -> str:
    text = (member.__doc__ or "").strip()
    if aliases:
        text += ("\n\n" if text else "") + "Also accepted under: " + ", ".join(aliases) + "."
    return text
