"""Must fail: a ``sender`` that is neither an actor nor a reference, invalid message fields, a
``DataMessage`` payload of the wrong type, a ``reply`` that is not the message's reply type, and
assigning to a field of a message (messages are frozen).

See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is ever run.
"""

from __future__ import annotations

from datetime import datetime, timezone

from actorio import NO_SENDER, DataMessage, Message


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Count(Message[int]):
    pass


class Numbers(Message[list[int]]):
    pass


# -- sender of the wrong kind ----------------------------------------------------------------------


def sender_is_an_int() -> None:
    Greet(name="x", sender=5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def sender_is_a_str() -> None:
    Message(sender="me")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def sender_is_a_message() -> None:
    DataMessage(data=1, sender=Greeting(text="x"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def sender_is_an_actor_class() -> None:
    from actorio import Actor

    Message(sender=Actor)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- invalid fields ----------------------------------------------------------------------------------


def field_of_the_wrong_type() -> None:
    Greet(name=5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def missing_field() -> None:
    Greet()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def unknown_field() -> None:
    Greet(name="x", title="Dr")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def positional_field() -> None:
    Greet("x")  # type: ignore[call-arg, arg-type]  # pyright: ignore[reportCallIssue]


def data_of_the_wrong_type() -> None:
    DataMessage[int](data="x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def data_of_the_wrong_generic_type() -> None:
    DataMessage[list[int]](data=["x"])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]


def data_read_as_another_type() -> None:
    text: str = DataMessage(data=1).data  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    print(text)


# -- reply with the wrong type -----------------------------------------------------------------------


async def reply_an_int_to_greet(msg: Greet) -> None:
    await msg.reply(5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def reply_a_greeting_to_count(msg: Count) -> None:
    await msg.reply(Greeting(text="x"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def reply_the_wrong_list(msg: Numbers) -> None:
    await msg.reply(["x"])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]


# -- messages are frozen -------------------------------------------------------------------------


class LoudGreet(Greet):
    volume: int = 1


def assign_a_field(msg: Greet) -> None:
    msg.name = "x"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]


def assign_a_field_of_a_subclass(msg: LoudGreet) -> None:
    msg.volume = 2  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    msg.name = "x"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]


def assign_the_common_fields(msg: Greet) -> None:
    msg.sender = NO_SENDER  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    msg.creation_date = datetime.now(timezone.utc)  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]


def assign_the_data(msg: DataMessage[int]) -> None:
    msg.data = 2  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
