"""The AsyncAPI 3.0 export (actorio.asyncapi, ``python -m actorio asyncapi``), validated against the
official AsyncAPI 3.0.0 JSON Schema (fixtures/asyncapi-3.0.0.schema.json, see fixtures/README.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from actorio import Actor, DataMessage, Message, handles
from actorio._cli import main
from actorio.asyncapi import Publication, asyncapi_document

jsonschema = pytest.importorskip("jsonschema")  # the dev extra's; typed Any here (it has no stubs)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "asyncapi-3.0.0.schema.json"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def asyncapi_schema() -> Any:
    schema = json.loads(FIXTURE.read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    return jsonschema.Draft7Validator(schema)


def _problems(validator: Any, document: dict[str, Any]) -> list[str]:
    return [
        f"{list(error.absolute_path)}: {error.message[:300]}" for error in validator.iter_errors(document)
    ]


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    """Asking with Greet returns a Greeting."""

    wire_name: ClassVar[str] = "greet"
    wire_aliases: ClassVar[tuple[str, ...]] = ("hello",)
    name: str


class Count(Message[int | None]):
    step: int = 1


class Items(Message[list[DataMessage[int]]]):
    pass


class Failed(Message):
    reason: str


class Compute(Message[Greeting | Failed]):
    pass


class Stop(Message):
    pass


class Greeter(Actor[Greet | Count | Items | Compute | Stop]):
    @handles(Greet, Count, Items, Compute, Stop)
    async def any_(self, msg: Greet | Count | Items | Compute | Stop) -> Any:
        return None


class Other(Actor[Greet | Stop]):  # shares message types (and so schemas) with Greeter
    @handles(Greet, Stop)
    async def any_(self, msg: Greet | Stop) -> Greeting | None:
        return None


def _document() -> dict[str, Any]:
    published: dict[str, type[Actor[Any]]] = {"greeter": Greeter, "shop.other": Other}
    return asyncapi_document(published, prefix="shop", servers=["nats://nats.example.com:4222"])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _pointer(document: dict[str, Any], reference: str) -> Any:
    target: Any = document
    for part in reference.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def test_the_document_is_valid_asyncapi_3(asyncapi_schema: Any) -> None:
    document = _document()
    assert _problems(asyncapi_schema, document) == []
    assert document["asyncapi"] == "3.0.0"


def test_the_validator_refuses_what_is_not_asyncapi_3(asyncapi_schema: Any) -> None:
    """The fixture is the real schema, not one that accepts anything."""
    document = _document()
    for broken in (
        {**document, "asyncapi": "2.6.0"},
        {key: value for key, value in document.items() if key != "info"},
        {**document, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/greeter"}}}},
        {**document, "channels": {"greeter": {"address": 3}}},
        {
            **document,
            "components": {"schemas": {"X": {"type": "object", "discriminator": {"propertyName": "t"}}}},
        },
    ):
        assert _problems(asyncapi_schema, broken), broken.keys()


def test_every_reference_points_into_the_document() -> None:
    document = _document()
    references = set(_refs(document))
    assert references
    for reference in references:
        assert reference.startswith("#/"), reference
        _pointer(document, reference)  # raises KeyError if it points nowhere


def test_channels_are_the_subjects_and_operations_ask_or_tell() -> None:
    document = _document()
    assert document["servers"]["nats"] == {
        "host": "nats.example.com:4222",
        "protocol": "nats",
        "description": "A NATS server (nats://nats.example.com:4222) the publishing processes connect to.",
    }
    channel = document["channels"]["greeter"]
    assert channel["address"] == "shop.actor.greeter"
    assert set(channel["messages"]) == {"greet", "Count", "Items", "Compute", "Stop"}
    assert document["channels"]["shop.other"]["address"] == "shop.actor.shop.other"
    assert document["channels"]["greeter.reply"]["address"] is None  # the asker's inbox
    operations = document["operations"]
    ask, tell = operations["greeter.greet"], operations["greeter.Stop"]
    assert ask["action"] == tell["action"] == "receive"
    assert ask["bindings"]["nats"]["queue"] == "shop.actor.greeter"
    assert "reply" not in tell
    assert [m["$ref"] for m in ask["reply"]["messages"]] == [
        "#/channels/greeter.reply/messages/greet.reply",
        "#/channels/greeter.reply/messages/error",
    ]
    client = asyncapi_document([Publication("greeter", Greeter)], action="send")
    assert {operation["action"] for operation in client["operations"].values()} == {"send"}


def test_the_payload_schemas_validate_the_wire_forms() -> None:
    document = _document()

    def validator(reference: str) -> Any:
        # The document is the root, so that the payloads' references to its components resolve.
        return jsonschema.Draft7Validator({**document, "$ref": reference})

    greet = validator("#/components/messages/greeter.greet/payload")
    assert greet.is_valid(Greeter.protocol.dump(Greet(name="x")))
    assert greet.is_valid({"type": "hello", "data": {"name": "x"}})  # an alias
    assert not greet.is_valid({"type": "greet", "data": {}})
    assert not greet.is_valid({"type": "greet", "data": {"name": "x", "extra": 1}})
    reply = validator("#/components/messages/greeter.greet.reply/payload")
    assert reply.is_valid(Greeter.protocol.dump(Greeting(text="hi")))
    assert not reply.is_valid(3)
    assert validator("#/components/messages/greeter.Count.reply/payload").is_valid(None)
    items = validator("#/components/messages/greeter.Items.reply/payload")
    # A reply that is not a message (a list of them, here) travels as the JSON of its type.
    assert items.is_valid([{"data": 1}])
    assert not items.is_valid([{"data": "x"}])
    either = validator("#/components/messages/greeter.Compute.reply/payload")
    assert either.is_valid({"type": "Failed", "data": {"reason": "x"}})
    assert not either.is_valid({"type": "Stop", "data": {}})
    error = validator("#/components/messages/actorio.error/payload")
    assert error.is_valid({"kind": "error", "type": "ValueError", "message": "x"})
    # Greeter and Other share Greet: one schema component.
    assert sum(1 for name in document["components"]["schemas"] if name.startswith("GreetEnvelope")) == 1


def test_names_that_are_not_subjects_are_refused() -> None:
    with pytest.raises(ValueError, match="is not a publication name"):
        asyncapi_document({"greeter.*": Greeter})
    with pytest.raises(ValueError, match="is not a subject prefix"):
        asyncapi_document({"greeter": Greeter}, prefix="")
    with pytest.raises(ValueError, match="is not a server URL"):
        asyncapi_document({"greeter": Greeter}, servers=["localhost"])


def test_the_command_prints_or_writes_a_valid_document(
    asyncapi_schema: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["asyncapi", "hello_world:Greeter=greeter", "actor_spawning:Manager", "--path", "examples"]
    assert main([*arguments, "--server", "nats://127.0.0.1:4222"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert _problems(asyncapi_schema, document) == []
    assert set(document["channels"]) == {"greeter", "greeter.reply", "Manager", "Manager.reply"}
    output = tmp_path / "asyncapi.json"
    assert main([*arguments, "--client", "-o", str(output)]) == 0
    assert capsys.readouterr().out == f"wrote {output}\n"
    assert _problems(asyncapi_schema, json.loads(output.read_text())) == []
    assert main(["asyncapi", "hello_world:Greeter=a b", "--path", "examples"]) == 1
    assert "is not a publication name" in capsys.readouterr().err


def test_a_reply_of_a_message_and_a_plain_type_is_described_as_it_travels() -> None:
    from actorio.nats._codec import ReplyCodec

    class Pong(Message):
        v: int

    class Either(Message[Pong | int]):
        pass

    class Mixed(Actor[Either]):
        @handles(Either)
        async def either(self, msg: Either) -> Pong | int:
            return 1

    document = asyncapi_document([Publication("mixed", Mixed)])
    reply = jsonschema.Draft7Validator(
        {**document, "$ref": "#/components/messages/mixed.Either.reply/payload"}
    )
    codec = ReplyCodec(Pong | int)
    for value in (Pong(v=1), 3):
        assert reply.is_valid(json.loads(codec.encode(value))), value
    assert not reply.is_valid("text")
