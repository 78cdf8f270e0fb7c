"""Must pass: message construction, the ``sender`` field, ``reply`` and ``DataMessage``.

``sender`` accepts an actor (typed or not) or any reference, and ``msg.sender.tell(...)`` always
type-checks, whatever is told.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from typing_extensions import assert_type

from actorio import (
    NO_REPLY,
    NO_SENDER,
    Actor,
    ActorRef,
    BaseRef,
    DataMessage,
    Message,
    NoReply,
    Reference,
    Sender,
    handles,
)


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Greeter(Actor[Greet]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        await msg.sender.tell(Greeting(text="told"))
        msg.sender.tell_nowait("anything at all")
        return Greeting(text=msg.name)


class Untyped(Actor):
    pass


def senders(actor: Greeter, untyped: Untyped, ref: ActorRef[Greet], base: BaseRef) -> None:
    Greet(name="x")
    Greet(name="x", sender=actor)
    Greet(name="x", sender=untyped)
    Greet(name="x", sender=ref)
    Greet(name="x", sender=actor.reference)
    Greet(name="x", sender=Reference())
    Greet(name="x", sender=Reference("inbox"))
    Greet(name="x", sender=NO_SENDER)
    Greet(name="x", sender=base)
    Message(sender=untyped)
    DataMessage(data=1, sender=actor)


async def the_sender_field(msg: Greet, inbox: Reference) -> None:
    assert_type(msg.sender, Sender)
    assert_type(msg.sender.identifier, str)
    assert_type(await msg.sender.tell(Greeting(text="x")), None)
    await msg.sender.tell(5)
    await msg.sender.tell("not even a message: checked at run time")
    msg.sender.tell_nowait(Greet(name="y"))
    assert_type(msg.creation_date, datetime)
    assert_type(msg.name, str)
    assert_type(inbox.inbox, asyncio.Queue[Any])
    assert_type(inbox.identifier, str)
    await inbox.tell(msg)


async def replies(msg: Greet, count: DataMessage[int]) -> None:
    assert_type(await msg.reply(Greeting(text="x")), NoReply)
    assert_type(await count.reply("a DataMessage's reply type is Any"), NoReply)
    assert_type(NO_REPLY, NoReply)


def data_messages() -> None:
    assert_type(DataMessage(data="x"), DataMessage[str])
    assert_type(DataMessage(data="x").data, str)
    assert_type(DataMessage[int](data=1).data, int)
    assert_type(DataMessage[list[int]](data=[1]).data, list[int])
    untyped: DataMessage[Any] = DataMessage(data=object())
    assert_type(untyped.data, Any)


def messages_are_pydantic_models(msg: Greet) -> None:
    assert_type(msg.model_copy(update={"name": "y"}), Greet)
    assert_type(msg.model_dump(), dict[str, Any])
    assert_type(Greet.model_validate({"name": "x"}), Greet)
