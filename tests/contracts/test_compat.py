"""Compatibility between protocol versions (actorio.compat, ``python -m actorio compat``): pairs of
versions with known breaking and additive changes, in each direction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pytest
from pydantic import Field

from actorio import Actor, Message, handles
from actorio._cli import main
from actorio.compat import ProtocolError, assert_compatible, check_compatibility, load_protocol

# Each version is made by a function, so that both versions' classes have the same names (a
# message's class name is how a rename is told from a removal).


def base() -> type[Actor[Any]]:
    class Greeting(Message):
        text: str

    class Greet(Message[Greeting]):
        wire_name: ClassVar[str] = "greet"
        name: str
        times: int = 1

    class Count(Message[int]):
        step: Annotated[int, Field(ge=0, le=100)] = 1

    class Stop(Message):
        pass

    class Greeter(Actor[Greet | Count | Stop]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> Greeting:
            return Greeting(text=msg.name)

        @handles(Count)
        async def count(self, msg: Count) -> int:
            return msg.step

        @handles(Stop)
        async def stop_now(self, msg: Stop) -> None:
            pass

    return Greeter


def additive() -> type[Actor[Any]]:
    """A new message, a new optional field, a field widened (int to float, a larger range)."""

    class Greeting(Message):
        text: str

    class Greet(Message[Greeting]):
        wire_name: ClassVar[str] = "greet"
        name: str
        times: float = 1
        title: str | None = None

    class Count(Message[int]):
        step: Annotated[int, Field(ge=-10, le=1000)] = 1

    class Stop(Message):
        pass

    class Ping(Message):
        pass

    class Greeter(Actor[Greet | Count | Stop | Ping]):
        @handles(Greet, Count, Stop, Ping)
        async def any_(self, msg: Greet | Count | Stop | Ping) -> Greeting | int | None:
            return None

    return Greeter


def breaking() -> type[Actor[Any]]:
    """Stop removed, Greet renamed without an alias, a new required field, a narrowed and a retyped
    field, a reply type changed."""

    class Greeting(Message):
        text: str

    class Greet(Message[Greeting]):
        wire_name: ClassVar[str] = "hello"
        name: Annotated[str, Field(max_length=10)]
        times: str = "1"
        language: str

    class Count(Message[str]):
        step: Annotated[int, Field(ge=0, le=10)] = 1

    class Greeter(Actor[Greet | Count]):
        @handles(Greet, Count)
        async def any_(self, msg: Greet | Count) -> Greeting | str:
            return ""

    return Greeter


def renamed_with_alias() -> type[Actor[Any]]:
    class Greeting(Message):
        text: str

    class Greet(Message[Greeting]):
        wire_name: ClassVar[str] = "hello"
        wire_aliases: ClassVar[tuple[str, ...]] = ("greet",)
        name: str
        times: int = 1

    class Count(Message[int]):
        step: Annotated[int, Field(ge=0, le=100)] = 1

    class Stop(Message):
        pass

    class Greeter(Actor[Greet | Count | Stop]):
        @handles(Greet, Count, Stop)
        async def any_(self, msg: Greet | Count | Stop) -> Greeting | int | None:
            return None

    return Greeter


def kinds(changes: tuple[Any, ...]) -> set[tuple[str, str]]:
    return {(change.message, change.kind) for change in changes}


def test_a_version_is_compatible_with_itself() -> None:
    result = check_compatibility(base(), base())
    assert result.backward == result.forward == ()
    assert result.compatible("full")


def test_additive_changes_are_backward_compatible() -> None:
    result = check_compatibility(base(), additive())
    assert result.backward == (), result.report()
    assert result.backward_compatible
    # Receivers on the old version refuse what they do not know: a new message, a new field.
    assert kinds(result.forward) >= {("Ping", "new-message"), ("greet", "new-field")}, result.report()
    assert not result.forward_compatible


def test_each_breaking_change_is_listed() -> None:
    result = check_compatibility(base(), breaking())
    found = kinds(result.backward)
    assert ("Stop", "removed-message") in found
    assert ("greet", "renamed-without-alias") in found
    assert ("Count", "narrowed") in found  # step: at most 10, was 100
    assert ("Count", "changed-reply") in found  # int, then str
    text = result.report()
    assert "wire name renamed to 'hello' without an alias" in text
    assert "upper bound 10 (was 100)" in text
    assert not result.backward_compatible


def test_a_new_required_field_and_a_retyped_field() -> None:
    old, new = base(), breaking()
    # Compare the renamed message as if its wire name had been kept: rename it back by alias.
    new_document = new.protocol.json_schema()
    entry = new_document["x-actorio"]["messages"]["hello"]
    entry["aliases"] = ["greet"]
    result = check_compatibility(old, new_document)
    details = [str(change) for change in result.backward if change.message == "greet"]
    assert "greet: new required field data.language" in details, details
    assert any("data.times changed from integer to string" in d for d in details), details
    assert any("data.name: maxLength 10" in d for d in details), details


def test_a_rename_with_an_alias_is_backward_compatible_and_not_forward() -> None:
    result = check_compatibility(base(), renamed_with_alias())
    assert result.backward == (), result.report()
    assert kinds(result.forward) == {("hello", "renamed-without-alias")}, result.report()
    assert "receivers on old know it as 'greet'" in result.report()


def test_a_new_field_in_a_reply_message_breaks_old_askers() -> None:
    """actorio refuses fields a message does not declare, replies included: a field added to a
    reply message is read by no asker on the old version."""

    def replying(extra: bool) -> type[Actor[Any]]:
        class Greeting(Message):
            text: str
            if extra:
                language: str = "en"

        class Greet(Message[Greeting]):
            name: str

        class Greeter(Actor[Greet]):
            @handles(Greet)
            async def greet(self, msg: Greet) -> Greeting:
                return Greeting(text=msg.name)

        return Greeter

    result = check_compatibility(replying(False), replying(True))
    assert [str(c) for c in result.backward] == [
        "Greet: reply: new field data.language (the old side refuses it as an extra field) "
        "(askers on old cannot read it)"
    ]
    assert result.forward == ()


def test_a_changed_reply_breaks_both_ways_when_neither_side_reads_the_other() -> None:
    result = check_compatibility(base(), breaking())
    assert ("Count", "changed-reply") in kinds(result.forward)


def test_a_widened_reply_breaks_backward_only() -> None:
    def replies(reply: Any) -> type[Actor[Any]]:
        class Ask(Message[reply]):
            pass

        class Server(Actor[Ask]):
            @handles(Ask)
            async def ask(self, msg: Ask) -> Any:
                return None

        return Server

    narrow, wide = replies(int), replies(int | None)
    widened = check_compatibility(narrow, wide)
    # Askers on the old version read an int; a None from the new one would not be read.
    assert kinds(widened.backward) == {("Ask", "changed-reply")}
    assert widened.forward == ()
    narrowed = check_compatibility(wide, narrow)
    assert narrowed.backward == ()
    assert kinds(narrowed.forward) == {("Ask", "changed-reply")}


def test_enums_and_literals() -> None:
    def with_mode(values: Any) -> type[Actor[Any]]:
        class Mode(Message):
            mode: values

        class Switch(Actor[Mode]):
            @handles(Mode)
            async def mode(self, msg: Mode) -> None:
                pass

        return Switch

    two, three = with_mode(Literal["a", "b"]), with_mode(Literal["a", "b", "c"])
    assert check_compatibility(two, three).backward == ()
    fewer = check_compatibility(three, two)
    assert [str(c) for c in fewer.backward] == ['Mode: data.mode no longer accepts "c"']


def test_nested_models_and_lists_are_compared() -> None:
    def shaped(item: Any) -> type[Actor[Any]]:
        class Draw(Message):
            points: list[item]

        class Canvas(Actor[Draw]):
            @handles(Draw)
            async def draw(self, msg: Draw) -> None:
                pass

        return Canvas

    floats, ints = shaped(float), shaped(int)
    assert check_compatibility(ints, floats).backward == ()
    narrowed = check_compatibility(floats, ints)
    assert [str(c) for c in narrowed.backward] == ["Draw: data.points[] changed from number to integer"]


def test_documents_of_both_layouts_and_files(tmp_path: Path) -> None:
    document = base().protocol.json_schema()
    first_layout = {
        "title": document["title"],
        "messages": {name: entry["payload"] for name, entry in document["x-actorio"]["messages"].items()},
        "union": {},
        "replies": {name: entry["reply"] for name, entry in document["x-actorio"]["messages"].items()},
    }
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(first_layout))
    assert check_compatibility(path, document).backward == ()
    assert check_compatibility(str(path), base()).compatible("full")
    assert load_protocol(path).messages.keys() == {"greet", "Count", "Stop"}


def test_what_is_not_a_protocol_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"type": "object"}')
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ProtocolError, match="is not a protocol schema"):
        load_protocol(tmp_path / "other.json")
    with pytest.raises(ProtocolError, match="cannot read"):
        load_protocol(tmp_path / "broken.json")
    with pytest.raises(ProtocolError, match="no such file, and not a module:Actor target"):
        load_protocol(str(tmp_path / "missing.json"))
    with pytest.raises(ProtocolError, match="no module named"):
        load_protocol("no_such_module_here:Greeter")
    with pytest.raises(ProtocolError, match="cannot read a protocol from int"):
        load_protocol(3)


def test_assert_compatible_fails_with_the_changes() -> None:
    assert assert_compatible(base(), additive()).backward_compatible
    with pytest.raises(AssertionError, match=r"not backward compatible:(.|\n)*Stop: message removed"):
        assert_compatible(base(), breaking())
    with pytest.raises(AssertionError, match="not full compatible"):
        assert_compatible(base(), additive(), require="full")


# -- the command -----------------------------------------------------------------------------------


def _schema_file(tmp_path: Path, name: str, actor: type[Actor[Any]]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(actor.protocol.json_schema()))
    return str(path)


def test_the_command_exits_0_1_or_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _schema_file(tmp_path, "old.json", base())
    assert main(["compat", old, _schema_file(tmp_path, "additive.json", additive())]) == 0
    assert "backward (receivers on new, senders on old): compatible" in capsys.readouterr().out
    assert (
        main(["compat", old, _schema_file(tmp_path, "additive.json", additive()), "--require", "full"]) == 1
    )
    capsys.readouterr()
    assert main(["compat", old, _schema_file(tmp_path, "breaking.json", breaking())]) == 1
    out = capsys.readouterr().out
    assert "- Stop: message removed: receivers on new refuse it" in out
    assert main(["compat", old, str(tmp_path / "missing.json")]) == 2
    assert "error: " in capsys.readouterr().err


def test_the_command_reads_hostile_documents_safely(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A protocol export may come from anywhere (another node's service answer, a file handed
    over): its names reach the terminal without their escape sequences, and a malformed or
    deeply nested document is an error (status 2), not a traceback."""
    escape = "\x1b]0;title\x1b\\\x1b[2J\u202e"

    def export(name: str, wire_name: str, aliases: object = ()) -> str:
        document = {
            "x-actorio": {
                "format": 2,
                "actor": f"Shop{escape}",
                "messages": {
                    wire_name: {
                        "class": "m.C",
                        "aliases": aliases,
                        "payload": {"type": "object", "properties": {}},
                        "reply": {"type": "null"},
                    }
                },
            }
        }
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return str(path)

    assert main(["compat", export("old.json", f"Old{escape}"), export("new.json", "New")]) == 1
    out = capsys.readouterr().out
    assert "breaking change" in out
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "\\x1b[2J" in out  # shown escaped
    deep = tmp_path / "deep.json"
    deep.write_text('{"x-actorio": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert main(["compat", str(deep), export("new.json", "New")]) == 2
    assert "RecursionError" in capsys.readouterr().err
    assert main(["compat", export("odd.json", "Odd", aliases=5), export("new.json", "New")]) == 2
    assert "not a protocol schema" in capsys.readouterr().err
    # Read whole, but of wrong shapes where the comparison looks: an error too.
    odd = json.loads(Path(export("odd.json", "New")).read_text())
    odd["x-actorio"]["messages"]["New"]["payload"] = {"type": "object", "properties": 5}
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    assert main(["compat", export("new.json", "New"), str(tmp_path / "odd.json")]) == 2
    assert "cannot be compared" in capsys.readouterr().err
    with pytest.raises(ProtocolError):
        check_compatibility(json.loads(Path(export("new.json", "New")).read_text()), odd)


def test_the_command_reads_targets_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["compat", "hello_world:Greeter", "hello_world:Greeter", "--path", "examples", "--json"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["backward_compatible"]
    assert printed["forward_compatible"]
    assert printed["changes"] == []


def test_a_recursive_model_is_compared_once_per_pair() -> None:
    def tree(value: Any) -> type[Actor[Any]]:
        class Node(Message):
            value: value
            children: tuple[Node, ...] = ()

        Node.model_rebuild()

        class Plant(Message):
            root: Node

        class Garden(Actor[Plant]):
            @handles(Plant)
            async def plant(self, msg: Plant) -> None:
                pass

        return Garden

    assert check_compatibility(tree(int), tree(float)).backward == ()
    narrowed = check_compatibility(tree(float), tree(int))
    assert [c.kind for c in narrowed.backward] == ["retyped"], narrowed.report()
