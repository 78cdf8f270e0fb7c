"""Protocols at run time: checked at class creation, enforced at the sender, narrowed references,
and handlers that return NO_REPLY."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import (
    NO_REPLY,
    Actor,
    ActorRef,
    ActorStopped,
    EndMainLoop,
    Message,
    NoReply,
    ask,
    handles,
)


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class LoudGreet(Greet):
    pass


class Stop(Message): ...


class Other(Message[int]): ...


class Greeter(Actor[Greet | Stop]):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        self.seen.append(type(msg).__name__)
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        raise EndMainLoop()


def untyped(ref: ActorRef[Any]) -> ActorRef[Any]:
    """The same reference seen as untyped: sends outside the protocol reach the run-time check."""
    return ref


async def bounded(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, timeout=2)


# -- class creation ---------------------------------------------------------------------------


def test_a_protocol_member_without_a_handler_is_a_type_error_naming_both() -> None:
    with pytest.raises(TypeError) as excinfo:

        class Missing(Actor[Greet | Stop]):  # type: ignore[actorio-handler]
            @handles(Greet)
            async def greet(self, msg: Greet) -> Greeting:
                return Greeting(text="")

    assert "Missing" in str(excinfo.value)
    assert "Stop" in str(excinfo.value)


def test_a_handler_outside_the_protocol_is_a_type_error_naming_both() -> None:
    with pytest.raises(TypeError) as excinfo:

        class Stray(Actor[Greet]):  # type: ignore[actorio-handler]
            @handles(Greet)
            async def greet(self, msg: Greet) -> Greeting:
                return Greeting(text="")

            @handles(Other)
            async def other(self, msg: Other) -> int:
                return 1

    text = str(excinfo.value)
    assert "Stray.other" in text
    assert "Other" in text
    assert "Greet" in text


def test_overriding_handle_message_covers_members_without_a_handler() -> None:
    class Fallback(Actor[Greet | Stop]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> Greeting:
            return Greeting(text="")

        async def handle_message(self, message: Any) -> Any:
            return None

    assert Fallback._actor_message_types == (Greet, Stop)


def test_a_handler_of_a_base_of_a_member_serves_it() -> None:
    class CatchAll(Actor[Greet | Stop]):
        @handles(Message)
        async def anything(self, msg: Message[Any]) -> None:
            return None

    assert CatchAll._actor_message_types == (Greet, Stop)


def test_a_subclass_inherits_the_protocol_and_the_handlers() -> None:
    class Polite(Greeter):
        pass

    assert Polite._actor_message_types == (Greet, Stop)


def test_an_actor_without_a_protocol_accepts_any_handler() -> None:
    class Anything(Actor):
        @handles(Other)
        async def other(self, msg: Other) -> int:
            return 1

    class AnyMessage(Actor[Message[Any]]):
        @handles(Other)
        async def other(self, msg: Other) -> int:
            return 1

    assert Anything._actor_message_types is None
    assert AnyMessage._actor_message_types is None


# -- at the sender ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tell_outside_the_protocol_fails_at_the_sender_before_it_is_queued() -> None:
    actor = Greeter()
    async with actor as ref:
        loose = untyped(ref)
        with pytest.raises(TypeError, match=r"does not accept Other \(its protocol: Greet \| Stop\)"):
            await loose.tell(Other())
        with pytest.raises(TypeError, match="does not accept Other"):
            loose.tell_nowait(Other())
        assert len(actor._actor_mailbox) == 0
        reply = await bounded(ask(ref, Greet(name="still up")))
        assert reply.text == "Hello still up!"


@pytest.mark.asyncio
async def test_ask_outside_the_protocol_fails_at_the_sender() -> None:
    async with Greeter() as ref:
        with pytest.raises(TypeError, match="does not accept Other"):
            await bounded(untyped(ref).ask(Other()))


@pytest.mark.asyncio
async def test_a_subclass_of_a_member_is_accepted() -> None:
    actor = Greeter()
    async with actor as ref:
        reply = await bounded(ask(ref, LoudGreet(name="x")))
    assert reply.text == "Hello x!"
    assert actor.seen == ["LoudGreet"]


# -- narrow -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_narrowed_reference_accepts_only_its_type() -> None:
    actor = Greeter()
    async with actor as ref:
        greet_only = ref.narrow(Greet)
        assert greet_only == ref
        assert hash(greet_only) == hash(ref)
        assert greet_only.message_types == (Greet,)
        reply = await bounded(greet_only.ask(Greet(name="n")))
        assert reply.text == "Hello n!"
        with pytest.raises(TypeError, match=r"does not accept Stop \(its protocol: Greet\)"):
            await untyped(greet_only).tell(Stop())
        assert actor.running


def test_narrowing_to_a_type_outside_the_protocol_fails() -> None:
    ref = Greeter().reference
    with pytest.raises(TypeError, match="does not accept Other"):
        untyped(ref).narrow(Other)
    with pytest.raises(TypeError, match="Message subclass"):
        untyped(ref).narrow(int)  # type: ignore[arg-type]


# -- NO_REPLY ---------------------------------------------------------------------------------


class Hold(Message[str]): ...


class Ping(Message[int]): ...


class Holder(Actor[Hold | Ping]):
    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    @handles(Hold)
    async def hold(self, msg: Hold) -> NoReply:
        self.held += 1
        return NO_REPLY

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return self.held


@pytest.mark.asyncio
async def test_a_handler_returning_no_reply_without_replying_fails_the_ask_when_the_actor_stops() -> None:
    actor = Holder()
    ref = await actor.start()
    pending = asyncio.ensure_future(ref.ask(Hold()))
    # Tasks take their first step in creation order, so the Ping is queued after the Hold (an ask
    # awaited in this task would be queued first: since Python 3.12, wait_for makes no task).
    ping = asyncio.ensure_future(ref.ask(Ping()))
    assert await bounded(ping) == 1  # FIFO barrier: the Hold was handled, and is held
    assert not pending.done()
    await bounded(actor.stop())
    with pytest.raises(ActorStopped):
        await bounded(pending)


class Relay(Actor[Greet]):
    def __init__(self, target: ActorRef[Greet]) -> None:
        super().__init__()
        self.target = target

    @handles(Greet)
    async def relay(self, msg: Greet) -> NoReply:
        return await self.target.forward(msg)


@pytest.mark.asyncio
async def test_forward_hands_the_ask_on_and_returns_no_reply() -> None:
    async with Greeter() as greeter, Relay(greeter) as relay:
        reply = await bounded(ask(relay, Greet(name="via relay")))
        assert reply.text == "Hello via relay!"
        assert await greeter.forward(Stop()) is NO_REPLY
