"""Hello world: an actor whose protocol is ``Greet | Stop``, asked with a typed reply."""

from __future__ import annotations

import asyncio

from actorio import Actor, EndMainLoop, Message, ask, handles


class Greeting(Message):  # Message[None]: a reply, or a fire-and-forget message
    """The reply to a `Greet`."""

    text: str


class Greet(Message[Greeting]):  # asking with Greet returns a Greeting
    """Asking with `Greet` returns a `Greeting`."""

    name: str


class Stop(Message):
    """Ends the greeter's mainloop."""


class Greeter(Actor[Greet | Stop]):  # the protocol: what this actor accepts
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        raise EndMainLoop()


async def main() -> None:
    greeter = Greeter()
    async with greeter as ref:  # an ActorRef[Greet | Stop]
        reply = await ask(ref, Greet(name="World"))  # a Greeting
        print(reply.text)
        await ref.tell(Stop())
        await greeter  # returns once the Stop handler has ended the mainloop


if __name__ == "__main__":
    asyncio.run(main())
