"""ActorProtocol.json_schema: a document that validates the accepted payloads, with one schema per
message and one per reply as metadata (``x-actorio``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import pytest

from actorio import Actor, Message, handles

from .test_protocol_validation import ACCEPTED, Ping, Server, Stop, rich_message


class Answer(Message):
    value: int


class Failure(Message):
    wire_name: ClassVar[str] = "failure"
    reason: str


class Question(Message[Answer | Failure]):
    text: str


class Maybe(Message[Answer | None]):
    pass


class Anything(Message[Any]):
    pass


class Opaque(Message[asyncio.Event]):
    pass


class Oracle(Actor[Question | Maybe | Anything | Opaque]):
    @handles(Question, Maybe, Anything, Opaque)
    async def any_(self, msg: Question | Maybe | Anything | Opaque) -> Any:
        return None


def _messages(schema: dict[str, Any]) -> dict[str, Any]:
    """wire name -> the schema of its wire form (format 2: under ``x-actorio``)."""
    return {name: entry["payload"] for name, entry in schema["x-actorio"]["messages"].items()}


def _replies(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: entry["reply"] for name, entry in schema["x-actorio"]["messages"].items()}


def test_the_schema_has_each_message_the_union_and_each_reply() -> None:
    schema = Server.protocol.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"{Server.protocol.name} protocol"
    assert tuple(_messages(schema)) == ACCEPTED
    assert tuple(_replies(schema)) == ACCEPTED
    union = schema  # the document itself is the union of the wire forms
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(ACCEPTED)
    assert len(union["oneOf"]) == len(ACCEPTED)
    json.dumps(schema)  # JSON-ready


def test_a_message_schema_is_its_wire_form() -> None:
    ping = _messages(Server.protocol.json_schema())["Ping"]
    assert ping["properties"]["type"] == {"const": "Ping", "title": "Type", "type": "string"}
    assert set(ping["properties"]) == {"type", "data", "id", "reply_to"}
    assert ping["required"] == ["type", "data"]  # Ping has a required field
    assert ping["additionalProperties"] is False
    data = ping["$defs"]["Ping"]
    assert set(data["properties"]) == {"creation_date", "n"}
    assert data["required"] == ["n"]  # creation_date is optional on input
    assert data["additionalProperties"] is False
    stop = _messages(Server.protocol.json_schema())["Stop"]
    assert stop["required"] == ["type"]  # nothing required in its data: "data" may be left out


def test_sender_is_in_no_schema() -> None:
    assert "sender" not in json.dumps(Server.protocol.json_schema())
    assert "sender" not in json.dumps(Oracle.protocol.json_schema())
    # Nor in a message's own schema (no warning either: warnings are errors here).
    assert "sender" not in Ping.model_json_schema()["properties"]


def test_reply_schemas() -> None:
    replies = _replies(Server.protocol.json_schema())
    assert replies["rich"]["properties"]["type"]["const"] == "Reply"
    assert replies["rich"]["$defs"]["Reply"]["required"] == ["text"]
    assert replies["Ping"] == {"type": "integer"}
    assert replies["Stop"] == {"type": "null"}
    others = _replies(Oracle.protocol.json_schema())
    assert others["Question"]["discriminator"]["mapping"].keys() == {"Answer", "failure"}
    assert others["Maybe"]["anyOf"][1] == {"type": "null"}
    assert others["Maybe"]["anyOf"][0]["properties"]["type"]["const"] == "Answer"
    assert others["Anything"] == {}
    assert others["Opaque"] == {
        "$comment": f"a reply of type {asyncio.Event!r} has no JSON Schema",
        "x-actorio-opaque": repr(asyncio.Event),
    }


def test_an_empty_protocol_accepts_nothing() -> None:
    class Original(Actor):
        async def handle_message(self, message: Any) -> None:
            pass

    schema = Original.protocol.json_schema()
    assert (_messages(schema), schema["not"], _replies(schema)) == ({}, {}, {})


def test_the_schema_agrees_with_validate() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Server.protocol.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    union = jsonschema.Draft202012Validator(schema)  # the document itself
    for message in (rich_message(), Ping(n=1), Stop()):
        wire = Server.protocol.dump(message, id=1)
        assert union.is_valid(wire), list(union.iter_errors(wire))
        assert jsonschema.Draft202012Validator(_messages(schema)[wire["type"]]).is_valid(wire)
    assert union.is_valid({"type": "Stop"})
    for refused in (
        {"type": "nope"},
        {"type": "Nope"},
        {},
        {"data": {"n": 1}},
        {"type": "Ping"},
        {"type": "Ping", "data": {}},
        {"type": "Ping", "data": {"n": 1, "extra": 1}},
        {"type": "Ping", "data": {"n": 1}, "extra": 1},
        {"type": "Ping", "data": {"n": "x"}},
        {"type": "Ping", "data": {"n": 1}, "id": 1.5},
        [1],
    ):
        assert not union.is_valid(refused), refused


def test_the_document_refuses_what_validate_refuses_for_an_empty_protocol() -> None:
    jsonschema = pytest.importorskip("jsonschema")

    class Original(Actor):
        async def handle_message(self, message: Any) -> None:
            pass

    document = jsonschema.Draft202012Validator(Original.protocol.json_schema())
    assert not document.is_valid({"type": "Stop"})
    assert not document.is_valid({})


def test_the_metadata_names_the_actor_and_each_message_class() -> None:
    metadata = Server.protocol.json_schema()["x-actorio"]
    assert metadata["format"] == 2
    assert metadata["actor"] == Server.protocol.name
    assert metadata["messages"]["Ping"]["class"] == f"{Ping.__module__}.{Ping.__qualname__}"
    assert metadata["messages"]["Ping"]["aliases"] == []
