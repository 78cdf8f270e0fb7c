"""The forms a protocol may be written in, read at class creation as the checkers read them: a
string, a ``type`` alias (PEP 695, and typing_extensions' `TypeAliasType`), a type variable and
its default; and the arguments that are no protocol, refused rather than read as "any message"."""

from __future__ import annotations

import sys
import types
from typing import Any, Generic, Union, cast

import pytest
from typing_extensions import TypeAliasType, TypeVar

from actorio import Actor, Message, handles


class Greet(Message): ...


class Stop(Message): ...


class Other(Message): ...


def actor_class(argument: Any, namespace: dict[str, Any] | None = None) -> type[Actor[Any]]:
    """``class Made(Actor[argument])`` with ``namespace`` as its body, made at run time: the
    arguments that are no protocol are type errors too, which the checkers would stop at."""
    body = {"__module__": __name__, **(namespace or {})}
    return types.new_class("Made", (cast(Any, Actor)[argument],), exec_body=lambda ns: ns.update(body))


async def greet(self: Any, msg: Greet) -> None: ...


async def halt(self: Any, msg: Stop) -> None: ...


ALIAS = TypeAliasType("ALIAS", Greet | Stop)

BOTH = {"greet": handles(Greet)(greet), "halt": handles(Stop)(halt)}


def test_a_string_protocol_is_read_in_the_module_of_the_class() -> None:
    class Greeter(Actor["Greet | Stop"]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> None: ...

        @handles(Stop)
        async def halt(self, msg: Stop) -> None: ...

    assert Greeter._actor_message_types == (Greet, Stop)
    assert Greeter().reference.message_types == (Greet, Stop)


def test_a_string_protocol_member_without_a_handler_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="protocol includes Stop, but Made has no handler for it"):
        actor_class("Greet | Stop", {"greet": BOTH["greet"]})
    with pytest.raises(TypeError, match="protocol includes Stop"):
        actor_class(Union["Greet", "Stop"], {"greet": BOTH["greet"]})


def test_a_string_naming_no_class_yet_is_a_type_error_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"'Greet \| Later' names Later, which .* does not define"):
        actor_class("Greet | Later", BOTH)


@pytest.mark.asyncio
async def test_a_typing_extensions_alias_stands_for_its_value() -> None:
    with pytest.raises(TypeError, match="protocol includes Stop"):
        actor_class(ALIAS, {"greet": BOTH["greet"]})
    async with actor_class(ALIAS, BOTH)() as ref:
        assert ref.message_types == (Greet, Stop)
        with pytest.raises(TypeError, match="does not accept Other"):
            await ref.tell(cast(Any, Other()))


PEP_695 = """
type GreeterProtocol = Greet | Stop

class Greeter(Actor[GreeterProtocol]):
    @handles(Greet)
    async def greet(self, msg): ...

    @handles(Stop)
    async def halt(self, msg): ...

class Forgetful(Actor[GreeterProtocol]):
    @handles(Greet)
    async def greet(self, msg): ...
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the type statement is Python 3.12+")
@pytest.mark.asyncio
async def test_a_pep_695_alias_stands_for_its_value() -> None:
    namespace: dict[str, Any] = {"__name__": __name__, "Actor": Actor, "Greet": Greet, "Stop": Stop}
    namespace["handles"] = handles
    with pytest.raises(TypeError, match="Forgetful's protocol includes Stop, but Forgetful has no handler"):
        exec(PEP_695, namespace)
    greeter = namespace["Greeter"]
    assert greeter._actor_message_types == (Greet, Stop)
    async with greeter() as ref:
        with pytest.raises(TypeError, match="does not accept Other"):
            await ref.tell(Other())


@pytest.mark.parametrize(
    ("argument", "named"),
    [(int, "int"), (Greet | int, "int"), (Union[Greet, None], "NoneType"), ("int", "int")],  # noqa: UP007
)
def test_an_argument_that_is_no_protocol_is_a_type_error(argument: Any, named: str) -> None:
    with pytest.raises(
        TypeError, match=rf"Made's protocol includes <class '{named}'>, which is not a Message"
    ):
        actor_class(argument, BOTH)


def test_the_deliberately_untyped_forms_accept_any_message() -> None:
    class Plain(Actor):
        pass

    for untyped in (Plain, actor_class(Any), actor_class(Message), actor_class(Message[Any])):
        assert untyped._actor_message_types is None


# -- a type variable's default ------------------------------------------------------------------


class Count(Message[int]): ...


class Ping(Message[str]): ...


PC = TypeVar("PC", bound=Message[Any], default=Count)
PS = TypeVar("PS", bound=Message[Any], default="Count")
PN = TypeVar("PN", bound=Message[Any])


class Counting(Actor[PC]):
    @handles(Count)
    async def count(self, msg: Count) -> int:
        return 1


class Widened(Counting[Count | Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return "pong"


class Inheriting(Counting):
    pass


@pytest.mark.asyncio
async def test_a_generic_base_left_unbound_takes_its_type_variables_default() -> None:
    assert Counting._actor_message_types == Inheriting._actor_message_types == (Count,)
    async with Counting() as ref:
        assert ref.message_types == (Count,)
        with pytest.raises(TypeError, match=r"does not accept Ping \(its protocol: Count\)"):
            await ref.tell(cast(Any, Ping()))


def test_a_subclass_that_binds_the_type_variable_has_its_own_protocol() -> None:
    assert Widened._actor_message_types == (Count, Ping)


def test_a_default_written_as_a_string_is_read_in_the_type_variables_module() -> None:
    class Stringly(Actor[PS]):
        @handles(Count)
        async def count(self, msg: Count) -> int:
            return 1

    assert Stringly._actor_message_types == (Count,)


def test_a_default_is_checked_against_the_handlers() -> None:
    with pytest.raises(
        TypeError, match=r"Made.greet handles Greet, which is outside Made.s protocol \(Count\)"
    ):
        actor_class(PC, {"greet": BOTH["greet"]})


def test_a_type_variable_without_a_default_leaves_the_class_untyped() -> None:
    assert actor_class(PN, BOTH)._actor_message_types is None


Extra = TypeVar("Extra")
Protocol_ = TypeVar("Protocol_", bound=Message[Any])


class TwoParameters(Actor[Protocol_], Generic[Extra, Protocol_]):
    """A generic actor whose protocol is its second type parameter."""


def test_a_generic_base_passes_on_the_argument_in_its_protocols_place() -> None:
    class Bound(TwoParameters[int, Greet]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> None: ...

    assert Bound().reference.message_types == (Greet,)  # not int, the first argument
    with pytest.raises(TypeError, match="no handler for it"):

        class Unhandled(TwoParameters[int, Greet]):  # type: ignore[actorio-handler]
            pass

    class Open(TwoParameters[int, Any]):
        pass

    assert Open().reference.message_types is None


def test_a_string_protocol_names_the_classes_of_the_function_that_defines_the_actor() -> None:
    class Local(Message): ...

    class Greeter(Actor["Local"]):
        @handles(Local)
        async def local(self, msg: Local) -> None: ...

    assert Greeter().reference.message_types == (Local,)


def test_a_generic_base_whose_default_it_does_not_handle_is_left_to_its_subclasses() -> None:
    class Abstract(Actor[PC], Generic[PC]):
        pass  # no handler for Count, its type variable's default: its subclasses bind it

    assert Abstract().reference.message_types == (Count,)

    class Concrete(Abstract[Greet]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> None: ...

    assert Concrete().reference.message_types == (Greet,)
    with pytest.raises(TypeError, match="no handler for it"):

        class Unhandled(Abstract[Greet]):  # type: ignore[actorio-handler]
            pass
