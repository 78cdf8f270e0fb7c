"""Must fail: narrowing to a type outside the protocol, using a reference that accepts less where
one that accepts more is expected, protocols that are not messages, and ``register_child`` with
something that is not an actor.

See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is ever run.
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


class Greeter(Actor[Greet | Stop]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()


class GreetOnly(Actor[Greet]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=msg.name)


# -- narrow outside the protocol -------------------------------------------------------------------


def narrow_to_a_non_member(ref: ActorRef[Greet | Stop]) -> None:
    ref.narrow(Other)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def ask_a_narrowed_ref_inline_for_another_member(ref: ActorRef[Greet | Stop]) -> None:
    # The narrowed type is the argument's own class: the call's context cannot widen it.
    await ask(ref.narrow(Greet), Stop())  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


def narrow_to_a_non_message(ref: ActorRef[Greet | Stop]) -> None:
    ref.narrow(int)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def narrow_a_narrowed_ref_back(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    greet_only.narrow(Stop)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def narrow_to_a_base_of_a_member(ref: ActorRef[Greet | Stop]) -> None:
    ref.narrow(Message)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- contravariance misuse: a reference that accepts less is not one that accepts more -----------------


def wants_greet_or_stop(ref: ActorRef[Greet | Stop]) -> None: ...


def wants_any_message(ref: ActorRef[Message[Any]]) -> None: ...


def wants_a_greeter(actor: Actor[Greet | Stop]) -> None: ...


def pass_a_narrower_ref(ref: ActorRef[Greet]) -> None:
    wants_greet_or_stop(ref)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def assign_a_narrower_ref(ref: ActorRef[Greet]) -> None:
    wide: ActorRef[Greet | Stop] = ref  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    print(wide)


def a_typed_ref_is_not_an_untyped_one(ref: ActorRef[Greet | Stop]) -> None:
    wants_any_message(ref)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def unrelated_protocols(ref: ActorRef[Greet]) -> None:
    other: ActorRef[Other] = ref  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    print(other)


def pass_a_narrower_actor() -> None:
    wants_a_greeter(GreetOnly())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def narrowed_ref_is_narrow(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    wants_greet_or_stop(greet_only)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def narrower_ref_from_async_with() -> None:
    async with GreetOnly() as ref:
        wants_greet_or_stop(ref)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- protocols that are not messages -------------------------------------------------------------


class NotMessages(Actor[int]):  # type: ignore[type-var]  # pyright: ignore[reportInvalidTypeArguments]
    pass


def ref_of_a_non_message(ref: ActorRef[str]) -> None:  # type: ignore[type-var]  # pyright: ignore[reportInvalidTypeArguments]
    print(ref)


def ref_of_a_union_with_a_non_message(ref: ActorRef[Greet | int]) -> None:  # type: ignore[type-var]  # pyright: ignore[reportInvalidTypeArguments]
    print(ref)


# -- register_child --------------------------------------------------------------------------------


class Parent(Actor[Stop]):
    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()

    async def register_an_int(self) -> None:
        await self.register_child(5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async def register_a_message(self) -> None:
        await self.register_child(Greet(name="x"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async def register_an_actor_class(self) -> None:
        await self.register_child(Greeter)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async def register_a_reference(self, ref: ActorRef[Greet]) -> None:
        await self.register_child(ref)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async def child_ref_is_typed(self) -> None:
        child: ActorRef[Greet | Other] = await self.register_child(Greeter())  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
        print(child)
