"""Promise 2, dispatch: ``@handles`` declarations, inheritance and overrides along the MRO,
nearest-message-class resolution, conflicts at class creation, the ``handle_message`` fallback,
and the per-class dispatch cache."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import Actor, Message, UnhandledMessage, handles


class Base(Message[str]):
    pass


class Derived(Base):
    pass


class Other(Message[str]):
    pass


class L1(Message[str]):
    pass


class L2(L1):
    pass


class L3(L2):
    pass


class L4(L3):
    pass


class L5(L4):
    pass


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


async def ask_all(actor: Actor[Any], *messages: Message[str]) -> list[str]:
    """Start ``actor``, ask it each message in turn, stop it; the replies."""
    replies: list[str] = []
    async with actor as ref:
        for message in messages:
            replies.append(await bounded(ref.ask(message)))
    return replies


# -- declaring handlers -----------------------------------------------------------------------


def test_handles_refuses_a_non_async_method() -> None:
    """Promise 2: @handles on a plain function raises TypeError at decoration."""

    def not_async(self: Any, msg: Base) -> str:
        return "no"

    with pytest.raises(TypeError, match="async"):
        handles(Base)(not_async)  # type: ignore[arg-type]


def test_handles_refuses_an_async_generator() -> None:
    """Promise 2: an async generator is not an ``async def`` coroutine method."""

    async def generator(self: Any, msg: Base) -> Any:
        yield msg

    with pytest.raises(TypeError):
        handles(Base)(generator)


def test_handles_needs_at_least_one_type() -> None:
    """Promise 2: @handles() with no message types raises TypeError."""
    with pytest.raises(TypeError):
        handles()


@pytest.mark.parametrize("bad", [int, str, dict, object])
def test_handles_refuses_a_non_message_type(bad: Any) -> None:
    """Promise 2: @handles(T) where T is not a Message subclass raises TypeError."""
    with pytest.raises(TypeError):
        handles(bad)


def test_handles_refuses_a_message_instance() -> None:
    """Promise 2: @handles takes classes, not message instances."""
    instance: Any = Base()
    with pytest.raises(TypeError):
        handles(instance)


def test_handles_refuses_a_non_message_among_valid_types() -> None:
    """Promise 2: one bad type among good ones is enough for a TypeError."""
    bad: Any = int
    with pytest.raises(TypeError):
        handles(Base, bad)


@pytest.mark.parametrize("name", ["start", "stop", "wait", "mainloop_setup", "identifier", "children"])
def test_a_handler_named_as_what_the_runtime_calls_is_refused_at_class_creation(name: str) -> None:
    """A handler named ``stop`` (for a ``Stop`` message, say) would replace ``Actor.stop``: the
    actor would fail at ``async with``'s exit, far from the cause. The class is refused, also
    when the handler comes from a mixin."""

    def handler() -> Any:
        async def handle(self: Actor[Any], message: Base) -> str:
            return ""

        return handles(Base)(handle)

    with pytest.raises(
        TypeError, match=f"Named.{name} handles Base, but the runtime calls {name} on an actor"
    ):
        type("Named", (Actor,), {name: handler()})
    mixin = type("Mixin", (), {name: handler()})
    with pytest.raises(TypeError, match=f"Mixed.{name} handles Base, but the runtime calls {name}"):
        type("Mixed", (mixin, Actor), {})


def test_a_handler_may_shadow_a_helper_only_its_user_calls() -> None:
    """``ask``, ``tell``, ``watch``: the runtime never calls them on an actor, so a handler may
    take their names (as before the check): only the user's own ``actor.ask(...)`` reaches it."""

    class Server(Actor[Base]):
        @handles(Base)
        async def ask(self, message: Base) -> str:  # type: ignore[override]
            return ""

    class Relay(Actor[Base]):
        @handles(Base)
        async def tell(self, message: Base) -> str:  # type: ignore[override]
            return ""

    assert Server._actor_handlers[Base] is Server.__dict__["ask"]
    assert Relay._actor_handlers[Base] is Relay.__dict__["tell"]


def test_a_handler_may_be_named_handle_message() -> None:
    """``handle_message`` is the fallback, made to be overridden: a handler may take its name."""

    class Fallback(Actor):
        @handles(Base)
        async def handle_message(self, message: Any) -> str:
            return ""

    assert Fallback.handle_message is Fallback.__dict__["handle_message"]


def test_two_handlers_for_one_type_in_one_class_name_both_methods() -> None:
    """Promise 2: two handlers for one type in one class is a TypeError at class creation, naming both."""
    with pytest.raises(TypeError) as excinfo:

        class Conflicted(Actor):
            @handles(Base)
            async def first_handler(self, msg: Base) -> str:
                return "first"

            @handles(Other, Base)  # type: ignore[arg-type]  # the runtime error is under test
            async def second_handler(self, msg: Base) -> str:
                return "second"

    text = str(excinfo.value)
    assert "first_handler" in text
    assert "second_handler" in text


def test_plain_override_that_is_not_async_is_refused_at_class_creation() -> None:
    """Promise 2: a plain override of a handler must still be ``async def``."""

    class Parent(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "parent"

    with pytest.raises(TypeError):

        class Child(Parent):
            def on_base(self, msg: Base) -> str:  # type: ignore[override]
                return "child"


# -- dispatch ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_handler_can_declare_several_types() -> None:
    """Promise 2: @handles(T1, T2) takes both types."""

    class Both(Actor):
        @handles(Base, Other)
        async def on_either(self, msg: Base | Other) -> str:
            return type(msg).__name__

    assert await ask_all(Both(), Base(), Other()) == ["Base", "Other"]


@pytest.mark.asyncio
async def test_decorating_twice_adds_the_types_of_both() -> None:
    """Promise 2: stacking @handles adds the types."""

    class Stacked(Actor):
        @handles(Base)  # type: ignore[arg-type]  # stacking is runtime-only: use @handles(Base, Other)
        @handles(Other)
        async def on_either(self, msg: Base | Other) -> str:
            return "stacked-" + type(msg).__name__

    assert await ask_all(Stacked(), Base(), Other()) == ["stacked-Base", "stacked-Other"]


@pytest.mark.asyncio
async def test_subclass_message_goes_to_base_handler_when_it_has_none() -> None:
    """Promise 2: Base handled, Derived not: a Derived message goes to Base's handler."""

    class OnlyBase(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "base:" + type(msg).__name__

    assert await ask_all(OnlyBase(), Derived(), Base()) == ["base:Derived", "base:Base"]


@pytest.mark.asyncio
async def test_nearest_message_class_wins() -> None:
    """Promise 2: both Base and Derived handled: a Derived message goes to Derived's handler."""

    class BothLevels(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "base"

        @handles(Derived)
        async def on_derived(self, msg: Derived) -> str:
            return "derived"

    assert await ask_all(BothLevels(), Derived(), Base(), Derived()) == ["derived", "base", "derived"]


@pytest.mark.asyncio
async def test_nearest_message_class_wins_even_when_declared_in_a_parent_actor() -> None:
    """Promise 2: the message's MRO decides: a Derived handler inherited from a parent actor beats
    a Base handler declared in the subclass."""

    class ParentActor(Actor):
        @handles(Derived)
        async def on_derived(self, msg: Derived) -> str:
            return "parent-derived"

    class ChildActor(ParentActor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "child-base"

    assert await ask_all(ChildActor(), Derived(), Base()) == ["parent-derived", "child-base"]


@pytest.mark.asyncio
async def test_five_level_message_hierarchy() -> None:
    """Promise 2: with handlers for L1 and L3, L1-L2 go to the first and L3-L5 to the second;
    adding an L5 handler takes only L5."""

    class Levels(Actor):
        @handles(L1)
        async def on_l1(self, msg: L1) -> str:
            return "h1:" + type(msg).__name__

        @handles(L3)
        async def on_l3(self, msg: L3) -> str:
            return "h3:" + type(msg).__name__

    class MoreLevels(Levels):
        @handles(L5)
        async def on_l5(self, msg: L5) -> str:
            return "h5:" + type(msg).__name__

    messages = [L5(), L4(), L3(), L2(), L1()]
    assert await ask_all(Levels(), *messages) == ["h3:L5", "h3:L4", "h3:L3", "h1:L2", "h1:L1"]
    assert await ask_all(MoreLevels(), *messages) == ["h5:L5", "h3:L4", "h3:L3", "h1:L2", "h1:L1"]


# -- inheritance and overrides ----------------------------------------------------------------


class Parent(Actor):
    @handles(Base)
    async def on_base(self, msg: Base) -> str:
        return "parent"

    @handles(Other)
    async def on_other(self, msg: Other) -> str:
        return "parent-other"


@pytest.mark.asyncio
async def test_handlers_are_inherited() -> None:
    """Promise 2: a subclass that declares nothing handles what its parent handles."""

    class Heir(Parent):
        pass

    assert await ask_all(Heir(), Base(), Other()) == ["parent", "parent-other"]


@pytest.mark.asyncio
async def test_plain_override_keeps_the_handled_types() -> None:
    """Promise 2: redefining a handler by name without @handles keeps its types."""

    class PlainOverride(Parent):
        async def on_base(self, msg: Base) -> str:
            return "plain-override"

    assert await ask_all(PlainOverride(), Base(), Derived(), Other()) == [
        "plain-override",
        "plain-override",
        "parent-other",
    ]


@pytest.mark.asyncio
async def test_plain_override_can_call_super() -> None:
    """Promise 2: a plain override is an ordinary method override (super() works)."""

    class Wrapping(Parent):
        async def on_base(self, msg: Base) -> str:
            return "wrapped-" + await super().on_base(msg)

    assert await ask_all(Wrapping(), Base()) == ["wrapped-parent"]


@pytest.mark.asyncio
async def test_decorated_override_declares_its_types_anew() -> None:
    """Promise 2: redefining a handler with @handles replaces the parent's types for that name."""

    class Redeclared(Parent):
        # Narrowing an inherited handler's message type is what is under test.
        @handles(Derived)
        async def on_base(self, msg: Base) -> str:  # type: ignore[override]
            return "redeclared"

    actor = Redeclared()
    async with actor as ref:
        assert await bounded(ref.ask(Derived())) == "redeclared"
        assert await bounded(ref.ask(Other())) == "parent-other"
        with pytest.raises(UnhandledMessage):
            await bounded(ref.ask(Base()))


@pytest.mark.asyncio
async def test_subclass_handler_for_a_type_overrides_the_parent_handler_of_another_name() -> None:
    """Promise 2: along the actor MRO, the nearest class's handler for a type wins."""

    class Overriding(Parent):
        @handles(Base)
        async def on_base_again(self, msg: Base) -> str:
            return "child"

    assert await ask_all(Overriding(), Base(), Other()) == ["child", "parent-other"]
    assert await ask_all(Parent(), Base()) == ["parent"]


@pytest.mark.asyncio
async def test_mixin_order_decides_between_two_bases() -> None:
    """Promise 2: with two bases handling one type, the first in the MRO wins."""

    class Left(Actor):
        @handles(Base)
        async def on_left(self, msg: Base) -> str:
            return "left"

    class Right(Actor):
        @handles(Base)
        async def on_right(self, msg: Base) -> str:
            return "right"

    class LeftFirst(Left, Right):
        pass

    class RightFirst(Right, Left):
        pass

    assert await ask_all(LeftFirst(), Base()) == ["left"]
    assert await ask_all(RightFirst(), Base()) == ["right"]


# -- fallback ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_handle_message_is_the_fallback_for_unhandled_types() -> None:
    """Promise 2: an overridden handle_message gets the types that have no @handles handler."""
    seen: list[str] = []

    class WithFallback(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "handled"

        async def handle_message(self, message: Any) -> Any:
            seen.append(type(message).__name__)
            await message.sender.tell("fallback")

    assert await ask_all(WithFallback(), Other(), Base(), Derived()) == ["fallback", "handled", "handled"]
    assert seen == ["Other"]


@pytest.mark.asyncio
async def test_default_fallback_raises_unhandled_message_at_the_asker() -> None:
    """Promise 2: without a handler or a handle_message override, an ask fails with UnhandledMessage."""

    class OnlyBase(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "base"

    async with OnlyBase() as ref:
        with pytest.raises(UnhandledMessage) as excinfo:
            await bounded(ref.ask(Other()))
        assert isinstance(excinfo.value.message, Other)
        assert await bounded(ref.ask(Base())) == "base"


# -- cache ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_resolved_handler_is_cached_per_message_class() -> None:
    """Promise 2: after the first message of a class, its resolved handler is in the class's cache,
    and later messages of that class still reach the same handler."""

    class Cached(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "base:" + type(msg).__name__

    assert Derived not in Cached._actor_dispatch
    assert await ask_all(Cached(), Derived()) == ["base:Derived"]
    assert Derived in Cached._actor_dispatch
    assert await ask_all(Cached(), Derived(), Derived()) == ["base:Derived", "base:Derived"]


@pytest.mark.asyncio
async def test_cache_of_a_parent_does_not_leak_into_a_subclass() -> None:
    """Promise 2: each actor class has its own resolution; a parent's cached entry does not decide
    for a subclass that overrides, whichever class saw the message first."""

    class Upper(Actor):
        @handles(Base)
        async def on_base(self, msg: Base) -> str:
            return "upper"

    class Lower(Upper):
        @handles(Derived)
        async def on_derived(self, msg: Derived) -> str:
            return "lower"

    assert await ask_all(Upper(), Derived()) == ["upper"]
    assert await ask_all(Lower(), Derived()) == ["lower"]
    assert await ask_all(Upper(), Derived()) == ["upper"]
    assert Upper._actor_dispatch is not Lower._actor_dispatch


@pytest.mark.asyncio
async def test_same_message_class_dispatches_identically_across_instances() -> None:
    """Promise 2: the cache is per class: two instances of one actor class agree."""

    class Shared(Actor):
        @handles(L2)
        async def on_l2(self, msg: L2) -> str:
            return "l2"

    assert await ask_all(Shared(), L4()) == ["l2"]
    assert await ask_all(Shared(), L4(), L3()) == ["l2", "l2"]
