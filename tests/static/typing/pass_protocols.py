"""Must pass: an actor's protocol types its references.

``class Greeter(Actor[Greet | Stop])`` gives ``ActorRef[Greet | Stop]`` from ``async with``,
``start()``, ``.reference`` and a parent's ``register_child``; ``narrow`` gives a reference to one
member; ``ActorRef`` and ``Actor`` are contravariant in the protocol. Nothing here is ever run.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from actorio import Actor, ActorRef, Message, NoReply, handles


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class LoudGreet(Greet):
    """A subclass of a protocol member: accepted wherever ``Greet`` is."""


class Stop(Message):
    pass


class Greeter(Actor[Greet | Stop]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()


class Untyped(Actor):
    pass


class Parent(Actor[Greet]):
    @handles(Greet)
    async def spawn(self, msg: Greet) -> NoReply:
        child = await self.register_child(Greeter())
        assert_type(child, ActorRef[Greet | Stop])
        assert_type(await self.register_child(Untyped()), ActorRef[Message[Any]])
        return await child.forward(msg)


# -- where references come from ----------------------------------------------------------------


async def refs_of_a_typed_actor() -> None:
    greeter = Greeter()
    assert_type(greeter.reference, ActorRef[Greet | Stop])
    async with greeter as ref:
        assert_type(ref, ActorRef[Greet | Stop])
    assert_type(await Greeter().start(), ActorRef[Greet | Stop])
    async with Greeter() as other:
        assert_type(other, ActorRef[Greet | Stop])


async def refs_of_an_untyped_actor() -> None:
    async with Untyped() as ref:
        assert_type(ref, ActorRef[Message[Any]])
    assert_type(Untyped().reference, ActorRef[Message[Any]])
    assert_type(await Untyped().start(), ActorRef[Message[Any]])


# -- what a reference accepts ------------------------------------------------------------------


async def members_and_their_subclasses(ref: ActorRef[Greet | Stop], greeter: Greeter) -> None:
    await ref.tell(Greet(name="x"))
    await ref.tell(LoudGreet(name="x"))
    await ref.tell(Stop())
    ref.tell_nowait(Stop())
    assert_type(await ref.forward(Greet(name="x")), NoReply)
    await greeter.tell(Greet(name="x"))
    greeter.tell_nowait(Stop())


async def an_untyped_ref_accepts_any_message(ref: ActorRef[Message[Any]], actor: Untyped) -> None:
    await ref.tell(Greet(name="x"))
    await ref.tell(Message())
    ref.tell_nowait(Stop())
    await actor.tell(Message())


# -- narrow ------------------------------------------------------------------------------------


async def narrow(ref: ActorRef[Greet | Stop]) -> None:
    greet_only = ref.narrow(Greet)
    assert_type(greet_only, ActorRef[Greet])
    assert_type(ref.narrow(Stop), ActorRef[Stop])
    assert_type(ref.narrow(LoudGreet), ActorRef[LoudGreet])
    assert_type(greet_only.narrow(Greet), ActorRef[Greet])
    await greet_only.tell(Greet(name="x"))
    await greet_only.tell(LoudGreet(name="x"))


def narrow_an_untyped_ref(ref: ActorRef[Message[Any]]) -> None:
    assert_type(ref.narrow(Greet), ActorRef[Greet])


# -- contravariance: a reference that accepts more stands in for one that accepts less ----------


def wants_greet(ref: ActorRef[Greet]) -> None: ...


def wants_loud_greet(ref: ActorRef[LoudGreet]) -> None: ...


def wants_greeter_actor(actor: Actor[Greet]) -> None: ...


def contravariance(ref: ActorRef[Greet | Stop], untyped: ActorRef[Message[Any]]) -> None:
    wants_greet(ref)
    wants_loud_greet(ref)
    wants_greet(untyped)
    only_greet: ActorRef[Greet] = ref
    wants_loud_greet(only_greet)
    wants_greeter_actor(Greeter())
    wants_greeter_actor(Untyped())
    stop_only: ActorRef[Stop] = untyped
    print(only_greet, stop_only)
