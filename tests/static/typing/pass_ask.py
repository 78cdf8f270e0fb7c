"""Must pass: the reply to an ask is typed by the message (``Greet(Message[Greeting])``).

Through the free ``ask(ref, msg)``, ``ref.ask(msg)`` and ``actor.ask(msg)``; for messages with no
reply (``None``), generic reply types, subclasses of a request, and untyped references (``Any``).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from typing_extensions import assert_type

from actorio import Actor, ActorRef, Message, ask, handles

M = TypeVar("M", bound=Message[Any])


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class LoudGreet(Greet):
    """Keeps ``Greet``'s reply type."""


class Stop(Message):
    """``Message[None]``: the reply to an ask is ``None``."""


class Numbers(Message[list[int]]):
    count: int


class Lookup(Message[dict[str, int] | None]):
    key: str


class Greeter(Actor[Greet | Stop | Numbers | Lookup]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()

    @handles(Numbers)
    async def numbers(self, msg: Numbers) -> list[int]:
        return list(range(msg.count))

    @handles(Lookup)
    async def lookup(self, msg: Lookup) -> dict[str, int] | None:
        return None


class Untyped(Actor):
    pass


async def free_ask(ref: ActorRef[Greet | Stop | Numbers | Lookup]) -> None:
    assert_type(await ask(ref, Greet(name="x")), Greeting)
    assert_type(await ask(ref, LoudGreet(name="x")), Greeting)
    assert_type(await ask(ref, Stop()), None)
    assert_type(await ask(ref, Numbers(count=3)), list[int])
    assert_type(await ask(ref, Lookup(key="k")), dict[str, int] | None)
    assert_type(await ask(ref, Greet(name="x"), timeout=1.5), Greeting)
    assert_type(await ask(ref, Greet(name="x"), None), Greeting)
    reply: Greeting = await ask(ref, Greet(name="x"))
    wider: Message[None] | None = await ask(ref, Greet(name="x"))
    print(reply.text, wider)


async def method_ask(ref: ActorRef[Greet | Stop | Numbers | Lookup]) -> None:
    assert_type(await ref.ask(Greet(name="x")), Greeting)
    assert_type(await ref.ask(LoudGreet(name="x")), Greeting)
    assert_type(await ref.ask(Stop()), None)
    assert_type(await ref.ask(Numbers(count=3)), list[int])
    assert_type(await ref.ask(Lookup(key="k")), dict[str, int] | None)
    assert_type(await ref.ask(Greet(name="x"), timeout=2), Greeting)
    print((await ref.ask(Greet(name="x"))).text)


async def ask_with_a_union_of_messages(ref: ActorRef[Greet | Stop], msg: Greet | Stop) -> None:
    assert_type(await ask(ref, msg), Greeting | None)
    assert_type(await ref.ask(msg), Greeting | None)


async def ask_an_actor(greeter: Greeter) -> None:
    assert_type(await ask(greeter, Greet(name="x")), Greeting)
    assert_type(await ask(greeter, Stop()), None)
    assert_type(await greeter.ask(Greet(name="x")), Greeting)
    assert_type(await greeter.ask(Numbers(count=1)), list[int])


async def ask_a_narrowed_ref(ref: ActorRef[Greet | Stop | Numbers | Lookup]) -> None:
    greet_only = ref.narrow(Greet)
    assert_type(await ask(greet_only, Greet(name="x")), Greeting)
    assert_type(await ask(greet_only, LoudGreet(name="x")), Greeting)
    assert_type(await greet_only.ask(Greet(name="x")), Greeting)


async def ask_an_untyped_ref(ref: ActorRef[Message[Any]], actor: Untyped) -> None:
    # The original API replied with whatever the actor told the sender.
    assert_type(await ask(ref, Message()), Any)
    assert_type(await ask(ref, Greet(name="x")), Any)
    assert_type(await ref.ask(Greet(name="x")), Any)
    assert_type(await ask(actor, Message()), Any)
    assert_type(await actor.ask(Stop()), Any)


async def concurrent_asks(ref: ActorRef[Greet | Stop | Numbers | Lookup]) -> None:
    replies = await asyncio.gather(ask(ref, Greet(name="a")), ask(ref, Numbers(count=2)))
    assert_type(replies, tuple[Greeting, list[int]])
    for next_reply in asyncio.as_completed([ask(ref, Greet(name=str(n))) for n in range(3)]):
        assert_type(await next_reply, Greeting)
    task = asyncio.ensure_future(ref.ask(Numbers(count=1)))
    assert_type(await task, list[int])


async def a_generic_call_written_inline(ref: ActorRef[Greet | Stop], greeter: Greeter) -> None:
    """A message made by a generic call inside the send, as ``probe.asking(...)`` makes one."""

    def asking(message: M) -> M:
        return message

    await ref.tell(asking(Greet(name="x")))
    ref.tell_nowait(asking(Stop()))
    await greeter.tell(asking(Greet(name="x")))
    assert_type(await ref.ask(asking(Greet(name="x"))), Greeting)
    assert_type(await ask(ref, asking(Greet(name="x"))), Greeting)
