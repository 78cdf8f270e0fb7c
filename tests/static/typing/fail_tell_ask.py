"""Must fail: telling, asking or forwarding a message outside a reference's protocol, sending
something that is not a message, and expecting the wrong reply type.

Each must-fail line carries two comments, mypy's type-ignore with the exact error codes and
pyright's pyright-ignore with the exact rules; with mypy's ``warn_unused_ignores`` and pyright's
``reportUnnecessaryTypeIgnoreComment``, a line that stops being an error fails the corpus. Each
one ends its own function: a failed ``await`` is ``Never`` to mypy, which would then skip the
rest of the block. Nothing here is ever run.
"""

from __future__ import annotations

from typing import Any

from actorio import Actor, ActorRef, Message, ask, handles


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Stop(Message):
    pass


class Other(Message[int]):
    pass


class Numbers(Message[list[int]]):
    pass


class Greeter(Actor[Greet | Stop]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()


class Counter(Actor[Numbers]):
    @handles(Numbers)
    async def numbers(self, msg: Numbers) -> list[int]:
        return [1]


class Untyped(Actor):
    pass


# -- tell, tell_nowait, forward outside the protocol ---------------------------------------------


async def tell_outside(ref: ActorRef[Greet | Stop]) -> None:
    await ref.tell(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_nowait_outside(ref: ActorRef[Greet | Stop]) -> None:
    ref.tell_nowait(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def forward_outside(ref: ActorRef[Greet | Stop]) -> None:
    await ref.forward(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def actor_tell_outside(greeter: Greeter) -> None:
    await greeter.tell(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def actor_tell_nowait_outside(greeter: Greeter) -> None:
    greeter.tell_nowait(Numbers())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_outside_after_async_with() -> None:
    async with Greeter() as ref:
        await ref.tell(Numbers())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_outside_after_start() -> None:
    ref = await Greeter().start()
    await ref.tell(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_outside_through_reference() -> None:
    await Greeter().reference.tell(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


class Parent(Actor[Stop]):
    @handles(Stop)
    async def spawn(self, msg: Stop) -> None:
        child = await self.register_child(Counter())
        await child.tell(msg)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_a_narrowed_ref_a_dropped_member(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    await greet_only.tell(Stop())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def forward_to_a_narrowed_ref(ref: ActorRef[Greet | Stop], msg: Stop) -> None:
    stop_only = ref.narrow(Stop)
    await stop_only.forward(Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- ask outside the protocol --------------------------------------------------------------------


async def method_ask_outside(ref: ActorRef[Greet | Stop]) -> None:
    await ref.ask(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def actor_ask_outside(greeter: Greeter) -> None:
    await greeter.ask(Numbers())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def method_ask_a_narrowed_ref(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    await greet_only.ask(Stop())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# mypy blames the reference (argument 1: the first overload, for untyped references, is the one it
# reports); pyright blames the message and reports that no overload matched.


async def free_ask_outside(ref: ActorRef[Greet | Stop]) -> None:
    await ask(ref, Other())  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def free_ask_an_actor_outside(greeter: Greeter) -> None:
    await ask(greeter, Numbers())  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def free_ask_a_narrowed_ref(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    await ask(greet_only, Stop())  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def free_ask_outside_after_async_with() -> None:
    async with Counter() as ref:
        await ask(ref, Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def free_ask_outside_as_an_argument(ref: ActorRef[Numbers]) -> None:
    await gather_like(ask(ref, Stop()))  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def gather_like(*coroutines: Any) -> None: ...


# -- sending something that is not a message -------------------------------------------------------


async def tell_an_int(ref: ActorRef[Greet | Stop]) -> None:
    await ref.tell(5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_an_untyped_ref_a_str(ref: ActorRef[Message[Any]]) -> None:
    await ref.tell("hello")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_nowait_an_untyped_actor_a_dict(actor: Untyped) -> None:
    actor.tell_nowait({"not": "a message"})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def free_ask_an_untyped_actor_an_int(actor: Untyped) -> None:
    await ask(actor, 5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def method_ask_an_untyped_ref_a_str(ref: ActorRef[Message[Any]]) -> None:
    await ref.ask("x")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def tell_a_typed_ref_any_message(ref: ActorRef[Greet | Stop], msg: Message[Any]) -> None:
    await ref.tell(msg)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def tell_a_message_class(ref: ActorRef[Greet | Stop]) -> None:
    await ref.tell(Stop)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- expecting the wrong reply -------------------------------------------------------------------


async def free_ask_wrong_reply(ref: ActorRef[Greet | Stop]) -> None:
    # mypy solves the reply type from the declared one, then reports argument 1 (the reference).
    reply: str = await ask(ref, Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def method_ask_wrong_reply(ref: ActorRef[Greet | Stop]) -> None:
    reply: str = await ref.ask(Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def actor_ask_wrong_reply(greeter: Greeter) -> None:
    reply: int = await greeter.ask(Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def none_reply_is_not_a_greeting(ref: ActorRef[Greet | Stop]) -> None:
    reply: Greeting = await ref.ask(Stop())  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def generic_reply_mismatch(ref: ActorRef[Numbers]) -> None:
    reply: list[str] = await ask(ref, Numbers())  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def return_the_wrong_reply(ref: ActorRef[Greet | Stop]) -> str:
    return await ask(ref, Greet(name="x"))  # type: ignore[arg-type, no-any-return]  # pyright: ignore[reportReturnType]


async def wrong_timeout(ref: ActorRef[Greet | Stop]) -> None:
    await ask(ref, Greet(name="x"), timeout="soon")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def forward_is_not_a_reply(ref: ActorRef[Greet | Stop], msg: Greet) -> None:
    reply: Greeting = await ref.forward(msg)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    print(reply)


async def handler_reply_is_kept(greeter: Greeter) -> None:
    text: str = await greeter.greet(Greet(name="x"))  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    print(text)
