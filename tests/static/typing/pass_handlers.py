"""Must pass: ``@handles`` accepts well-typed handlers and keeps each method's own type.

A handler of ``Greet(Message[Greeting])`` takes a ``Greet`` (or anything wider) and returns a
``Greeting`` (or a subclass), ``NoReply`` (it replied with ``msg.reply`` or handed the message on
with ``forward``), or either. A handler of several types takes their union and returns the union
of their replies.

This file shows handler signatures side by side, so some classes declare several handlers for
one type or leave protocol members unhandled: what the type checkers accept, checked without the
plugin. At run time (and with the ``actorio.mypy`` plugin) those classes are refused at class
creation; the other pass files are valid at run time too (tests/static/test_typing.py runs them).
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from actorio import NO_REPLY, Actor, ActorRef, Message, NoReply, handles


class Greeting(Message):
    text: str


class LoudGreeting(Greeting):
    pass


class Greet(Message[Greeting]):
    name: str


class Stop(Message):
    pass


class Ping(Message):
    pass


class Count(Message[int]):
    pass


class Numbers(Message[list[int]]):
    pass


class Five(Message[str]):
    pass


class Sixth(Message[int]):
    pass


class Seventh(Message[int]):
    pass


class Eighth(Message[int]):
    pass


class Ninth(Message):
    pass


Protocol = Greet | Stop | Ping | Count | Numbers | Five


class Worker(Actor[Greet]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)


class Greeter(Actor[Protocol]):
    def __init__(self, worker: ActorRef[Greet]) -> None:
        super().__init__()
        self.worker = worker

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()

    @handles(Count)
    async def count(self, msg: Count) -> int:
        return 1

    @handles(Numbers)
    async def numbers(self, msg: Numbers) -> list[int]:
        return [1, 2]


class Replies(Actor[Protocol]):
    """Handlers that reply through ``msg.reply`` or hand the message on: they return ``NoReply``."""

    def __init__(self, worker: ActorRef[Greet]) -> None:
        super().__init__()
        self.worker = worker

    @handles(Greet)
    async def greet(self, msg: Greet) -> NoReply:
        return await msg.reply(Greeting(text=msg.name))

    @handles(Count)
    async def count(self, msg: Count) -> NoReply:
        return await msg.reply(3)

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> NoReply:
        return NO_REPLY

    @handles(Numbers)
    async def numbers(self, msg: Numbers) -> list[int] | NoReply:
        if msg.sender:
            return await msg.reply([1])
        return [2]

    @handles(Ping)
    async def ping(self, msg: Ping) -> None:
        await msg.sender.tell(Ping())


class Forwarder(Actor[Greet]):
    def __init__(self, worker: ActorRef[Greet]) -> None:
        super().__init__()
        self.worker = worker

    @handles(Greet)
    async def greet(self, msg: Greet) -> NoReply:
        return await self.worker.forward(msg)


class Mixed(Actor[Greet]):
    """Answers directly or hands on: ``Greeting | NoReply``."""

    def __init__(self, worker: ActorRef[Greet]) -> None:
        super().__init__()
        self.worker = worker

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting | NoReply:
        if msg.name:
            return await self.worker.forward(msg)
        return LoudGreeting(text="?")


class Looser(Actor[Protocol]):
    """Wider parameters and narrower returns than required are fine."""

    @handles(Greet)
    async def greet(self, msg: object) -> LoudGreeting:
        return LoudGreeting(text="!")

    @handles(Stop)
    async def stop_now(self, msg: Message[None]) -> None:
        return None

    @handles(Greet, Count)
    async def either(self, msg: Greet | Count) -> Greeting:
        # Plain generics accept a return type narrower than the union of the replies (a Count
        # would get a Greeting); the actorio.mypy plugin reports it (actorio-handler, see
        # tests/static/mypy_plugin_cases/handlers.py.txt). pyright cannot see it.
        return Greeting(text="")


class Several(Actor[Protocol]):
    @handles(Greet, Count)
    async def two(self, msg: Greet | Count) -> Greeting | int:
        return 1

    @handles(Greet, Count, Stop)
    async def three(self, msg: Greet | Count | Stop) -> Greeting | int | None:
        return None

    @handles(Greet, Count, Stop, Numbers)
    async def four(self, msg: Greet | Count | Stop | Numbers) -> Greeting | int | list[int] | None:
        return None

    @handles(Greet, Count, Stop, Numbers, Five)
    async def five(
        self, msg: Greet | Count | Stop | Numbers | Five
    ) -> Greeting | int | list[int] | str | None:
        return None

    @handles(Greet, Count, Stop, Numbers, Five, Ping)
    async def six(self, msg: Protocol) -> Greeting | int | list[int] | str | NoReply | None:
        return None

    @handles(Greet, Count, Stop, Numbers, Five, Ping, Sixth, Seventh, Eighth, Ninth)
    async def ten(
        self, msg: Protocol | Sixth | Seventh | Eighth | Ninth
    ) -> Greeting | int | list[int] | str | None:
        # Checked up to ten types; with more, the handler's signature is not checked (documented).
        return None

    @handles(Stop, Ping)
    async def two_without_reply(self, msg: Stop | Ping) -> None:
        return None

    @handles(Greet, Count)
    async def two_no_reply(self, msg: Greet | Count) -> NoReply:
        return NO_REPLY


class Untyped(Actor):
    """An untyped actor may use ``@handles`` too; its handlers are checked the same way."""

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)

    async def handle_message(self, message: Message[Any]) -> None:
        await message.sender.tell(message)


class Child(Greeter):
    """An overriding handler keeps the parent's contract."""

    @handles(Greet)
    async def greet(self, msg: Greet) -> LoudGreeting:
        return LoudGreeting(text=msg.name)


async def decorated_methods_keep_their_types(worker: ActorRef[Greet]) -> None:
    greeter = Greeter(worker)
    assert_type(await greeter.greet(Greet(name="x")), Greeting)
    assert_type(await greeter.stop_now(Stop()), None)
    assert_type(await greeter.count(Count()), int)
    assert_type(await greeter.numbers(Numbers()), list[int])
    replies = Replies(worker)
    assert_type(await replies.greet(Greet(name="x")), NoReply)
    assert_type(await replies.numbers(Numbers()), list[int] | NoReply)
    assert_type(await Forwarder(worker).greet(Greet(name="x")), NoReply)
    assert_type(await Mixed(worker).greet(Greet(name="x")), Greeting | NoReply)
    # A handler returning a subclass of the reply type is typed as returning the reply type.
    looser: Greeting = await Looser().greet(Greet(name="x"))
    assert_type(await Several().two(Count()), Greeting | int)
    assert_type(await Several().three(Stop()), Greeting | int | None)
    assert_type(await Untyped().greet(Greet(name="x")), Greeting)
    child: Greeting = await Child(worker).greet(Greet(name="x"))
    print(looser, child)


async def replies_and_forwards(msg: Greet, ref: ActorRef[Greet]) -> None:
    assert_type(await msg.reply(Greeting(text="x")), NoReply)
    assert_type(await msg.reply(LoudGreeting(text="x")), NoReply)
    assert_type(await ref.forward(msg), NoReply)
    assert_type(await Count().reply(3), NoReply)
