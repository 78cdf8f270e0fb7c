"""Wire aliases: the other wire names a receiver accepts for a message type, so that renaming a
wire name stays compatible with senders that still use the old one."""

from __future__ import annotations

from typing import ClassVar

import pytest

from actorio import Actor, InvalidPayload, Message, handles


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    wire_name: ClassVar[str] = "greet"
    wire_aliases: ClassVar[tuple[str, ...]] = ("Greet", "hello")
    name: str


class Stop(Message):
    pass


class Greeter(Actor[Greet | Stop]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        pass


def test_a_payload_under_an_alias_is_the_message() -> None:
    for name in ("greet", "Greet", "hello"):
        message = Greeter.protocol.validate({"type": name, "data": {"name": "x"}})
        assert type(message) is Greet
        assert message.name == "x"


def test_a_sender_writes_the_wire_name() -> None:
    assert Greeter.protocol.dump(Greet(name="x"))["type"] == "greet"


def test_the_entry_lists_its_aliases_and_is_found_by_them() -> None:
    entry = Greeter.protocol["greet"]
    assert entry.aliases == ("Greet", "hello")
    assert Greeter.protocol["hello"] is entry
    assert Greeter.protocol.wire_names == ("greet", "Stop")


def test_an_unknown_name_is_still_refused() -> None:
    with pytest.raises(InvalidPayload, match="unknown message type 'howdy'"):
        Greeter.protocol.validate({"type": "howdy", "data": {"name": "x"}})


def test_the_schema_accepts_the_aliases() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Greeter.protocol.json_schema()
    document = jsonschema.Draft202012Validator(schema)
    for name in ("greet", "Greet", "hello"):
        assert document.is_valid({"type": name, "data": {"name": "x"}}), name
    assert not document.is_valid({"type": "howdy", "data": {"name": "x"}})
    assert schema["x-actorio"]["messages"]["greet"]["aliases"] == ["Greet", "hello"]


def test_an_alias_taken_by_another_message_is_a_type_error_at_class_creation() -> None:
    class Halt(Message):
        wire_aliases: ClassVar[tuple[str, ...]] = ("hello",)

    with pytest.raises(TypeError, match=r"two message types with the wire name 'hello'"):

        class Clash(Actor[Greet | Halt]):
            @handles(Greet, Halt)
            async def both(self, msg: Greet | Halt) -> Greeting | None:
                return None


def test_aliases_must_be_a_tuple_of_names() -> None:
    class Wrong(Message):
        wire_aliases: ClassVar[tuple[str, ...]] = "old"  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"Wrong.wire_aliases must be a tuple of non-empty str"):

        class Receiver(Actor[Wrong]):
            @handles(Wrong)
            async def wrong(self, msg: Wrong) -> None:
                pass


def test_aliases_are_not_inherited() -> None:
    class LoudGreet(Greet):
        pass

    class Loud(Actor[LoudGreet]):
        @handles(LoudGreet)
        async def loud(self, msg: LoudGreet) -> Greeting:
            return Greeting(text=msg.name)

    assert Loud.protocol["LoudGreet"].aliases == ()


def test_a_stub_keeps_the_aliases() -> None:
    from actorio._cli import render_stub

    stub = render_stub(__name__, [Greeter])
    assert 'wire_aliases: ClassVar[tuple[str, ...]] = ("Greet", "hello")' in stub
