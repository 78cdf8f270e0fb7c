"""ActorProtocol.json_schema: one schema per message, their union, and the reply schemas."""

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


def test_the_schema_has_each_message_the_union_and_each_reply() -> None:
    schema = Server.protocol.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"{Server.protocol.name} protocol"
    assert tuple(schema["messages"]) == ACCEPTED
    assert tuple(schema["replies"]) == ACCEPTED
    union = schema["union"]
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(ACCEPTED)
    assert len(union["oneOf"]) == len(ACCEPTED)
    json.dumps(schema)  # JSON-ready


def test_a_message_schema_is_its_wire_form() -> None:
    ping = Server.protocol.json_schema()["messages"]["Ping"]
    assert ping["properties"]["type"] == {"const": "Ping", "title": "Type", "type": "string"}
    assert set(ping["properties"]) == {"type", "data", "id", "reply_to"}
    assert ping["required"] == ["type", "data"]  # Ping has a required field
    assert ping["additionalProperties"] is False
    data = ping["$defs"]["Ping"]
    assert set(data["properties"]) == {"creation_date", "n"}
    assert data["required"] == ["n"]  # creation_date is optional on input
    assert data["additionalProperties"] is False
    stop = Server.protocol.json_schema()["messages"]["Stop"]
    assert stop["required"] == ["type"]  # nothing required in its data: "data" may be left out


def test_sender_is_in_no_schema() -> None:
    assert "sender" not in json.dumps(Server.protocol.json_schema())
    assert "sender" not in json.dumps(Oracle.protocol.json_schema())
    # Nor in a message's own schema (no warning either: warnings are errors here).
    assert "sender" not in Ping.model_json_schema()["properties"]


def test_reply_schemas() -> None:
    replies = Server.protocol.json_schema()["replies"]
    assert replies["rich"]["properties"]["type"]["const"] == "Reply"
    assert replies["rich"]["$defs"]["Reply"]["required"] == ["text"]
    assert replies["Ping"] == {"type": "integer"}
    assert replies["Stop"] == {"type": "null"}
    others = Oracle.protocol.json_schema()["replies"]
    assert others["Question"]["discriminator"]["mapping"].keys() == {"Answer", "failure"}
    assert others["Maybe"]["anyOf"][1] == {"type": "null"}
    assert others["Maybe"]["anyOf"][0]["properties"]["type"]["const"] == "Answer"
    assert others["Anything"] == {}
    assert others["Opaque"] == {"$comment": f"a reply of type {asyncio.Event!r} has no JSON Schema"}


def test_an_empty_protocol_accepts_nothing() -> None:
    class Original(Actor):
        async def handle_message(self, message: Any) -> None:
            pass

    schema = Original.protocol.json_schema()
    assert (schema["messages"], schema["union"], schema["replies"]) == ({}, {"not": {}}, {})


def test_the_schema_agrees_with_validate() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Server.protocol.json_schema()
    union = jsonschema.Draft202012Validator(schema["union"])
    for message in (rich_message(), Ping(n=1), Stop()):
        wire = Server.protocol.dump(message, id=1)
        assert union.is_valid(wire), list(union.iter_errors(wire))
        assert jsonschema.Draft202012Validator(schema["messages"][wire["type"]]).is_valid(wire)
    assert union.is_valid({"type": "Stop"})
    for refused in (
        {"type": "nope"},
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
