"""Must fail: ``@handles`` on a handler that does not fit its message types.

The error is on the ``@handles(...)`` line: the parameter does not accept every listed type, the
return type is not their reply types' union (or ``NoReply``), the method is not ``async``, it takes
the wrong number of arguments, it is not an actor's method, or a listed type is not a message.
mypy reports ``arg-type``; pyright reports that no overload of ``__call__`` matched, the argument,
and that the failed decorator leaves the method untyped.

See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is ever run.
"""

from __future__ import annotations

from typing import Any

from actorio import Actor, ActorRef, Message, NoReply, handles


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Stop(Message):
    pass


class Count(Message[int]):
    pass


class Numbers(Message[list[int]]):
    pass


class Five(Message[str]):
    pass


class Six(Message[bytes]):
    pass


Protocol = Greet | Stop | Count | Numbers


class WrongParameter(Actor[Protocol]):
    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def greet(self, msg: Stop) -> Greeting:
        return Greeting(text="")

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def base_with_another_reply(self, msg: Message[None]) -> Greeting:
        return Greeting(text="")

    @handles(Count)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def count(self, msg: int) -> int:
        return msg


class WrongReturn(Actor[Protocol]):
    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def greet(self, msg: Greet) -> str:
        return msg.name

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def optional(self, msg: Greet) -> Greeting | None:
        return None

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def base_of_the_reply(self, msg: Greet) -> Message:
        return Greeting(text="")

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def no_reply_or_none(self, msg: Greet) -> NoReply | None:
        return None

    @handles(Stop)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def stop_replies_none(self, msg: Stop) -> int:
        return 1

    @handles(Numbers)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def generic_reply(self, msg: Numbers) -> list[str]:
        return []

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def returns_a_reference(self, msg: Greet) -> ActorRef[Greet]:
        return self.reference.narrow(Greet)


class NotAsync(Actor[Protocol]):
    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    def greet(self, msg: Greet) -> Greeting:
        return Greeting(text="")

    @handles(Stop)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    def stop_now(self, msg: Stop) -> None:
        return None


class WrongArity(Actor[Protocol]):
    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def extra_parameter(self, msg: Greet, extra: int) -> Greeting:
        return Greeting(text="")

    @handles(Greet)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def no_message(self) -> Greeting:
        return Greeting(text="")


class MultiTypeMismatch(Actor[Protocol]):
    @handles(Greet, Stop)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def takes_one_of_two(self, msg: Greet) -> Greeting | None:
        return None

    @handles(Greet, Count)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def reply_outside_the_union(self, msg: Greet | Count) -> Greeting | str:
        return ""

    @handles(Greet, Count, Stop)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def takes_two_of_three(self, msg: Greet | Count) -> Greeting | int | None:
        return None

    @handles(Greet, Count, Stop, Numbers)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def wrong_generic_reply_of_four(self, msg: Protocol) -> Greeting | int | list[str] | None:
        return None


class FiveOrMoreTypes(Actor[Protocol | Five | Six]):
    """With five types or more, the handler is checked as with fewer (up to ten)."""

    @handles(Greet, Count, Stop, Numbers, Five)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def five_takes_four(self, msg: Protocol) -> Greeting | int | list[int] | str | None:
        return None

    @handles(Greet, Count, Stop, Numbers, Five)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def five_reply_outside(self, msg: Protocol | Five) -> Greeting | int | list[int] | bytes | None:
        return None

    @handles(Greet, Count, Stop, Numbers, Five, Six)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    def six_not_async(self, msg: Protocol | Five | Six) -> Greeting | int | list[int] | str | bytes | None:
        return None


class NotAnActor:
    @handles(Greet)  # type: ignore[type-var]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text="")


class NotMessages(Actor):
    @handles(int)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    async def number(self, msg: int) -> None:
        return None

    @handles(Greet, str)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    async def greet_or_str(self, msg: Any) -> Any:
        return None


async def free_function(msg: Greet) -> Greeting:
    return Greeting(text="")


def decorate_a_free_function() -> None:
    handles(Greet)(free_function)  # type: ignore[type-var, arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
