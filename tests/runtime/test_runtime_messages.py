"""Promise 1, messages: frozen pydantic models with a validated ``sender`` and a UTC ``creation_date``,
and only `Message` instances can be sent."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from actorio import (
    NO_SENDER,
    Actor,
    ActorRef,
    BaseRef,
    DataMessage,
    Message,
    Reference,
    ask,
    dead_letters,
    handles,
)


class Note(Message):
    text: str


class Ping(Message[int]):
    n: int


class Echo(Actor):
    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return msg.n


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


# -- frozen -----------------------------------------------------------------------------------


def test_message_is_frozen_mutation_raises_validation_error() -> None:
    """Promise 1: a message is frozen; assigning a field raises pydantic's ValidationError."""
    note = Note(text="a")
    with pytest.raises(ValidationError):
        note.text = "b"  # type: ignore[misc]  # what the checkers refuse, the runtime refuses too
    assert note.text == "a"


def test_message_sender_cannot_be_reassigned() -> None:
    """Promise 1: ``sender`` is frozen like any field."""
    note = Note(text="a")
    with pytest.raises(ValidationError):
        note.sender = Reference()  # type: ignore[misc]
    assert note.sender is NO_SENDER


def test_fields_are_validated_at_construction() -> None:
    """Promise 1: invalid fields raise ValidationError at construction."""
    bad: Any = ["not", "a", "string"]
    with pytest.raises(ValidationError):
        Note(text=bad)


# -- sender -----------------------------------------------------------------------------------


def test_sender_defaults_to_no_sender_which_is_falsy() -> None:
    """Promise 1: the default sender is NO_SENDER, a falsy reference."""
    note = Note(text="a")
    assert note.sender is NO_SENDER
    assert not note.sender
    assert isinstance(NO_SENDER, BaseRef)


@pytest.mark.asyncio
async def test_no_sender_swallows_what_it_is_told() -> None:
    """Promise 1: NO_SENDER can be told a message (a dead letter), without raising."""
    first, second = Note(text="lost"), Note(text="lost too")
    await NO_SENDER.tell(first)
    NO_SENDER.tell_nowait(second)
    letters = dead_letters.of(reason="no-sender")
    assert [letter.message for letter in letters] == [first, second]
    assert all(letter.recipient == NO_SENDER.identifier and letter.error is None for letter in letters)
    assert dead_letters.total == 2


def test_sender_accepts_an_actor_and_stores_its_reference() -> None:
    """Promise 1: an actor given as sender is stored as its ActorRef."""
    actor = Echo()
    note = Note(text="a", sender=actor)
    assert isinstance(note.sender, ActorRef)
    assert note.sender is actor.reference
    assert note.sender


@pytest.mark.asyncio
async def test_sender_accepts_a_reference_as_it_is() -> None:
    """Promise 1: a Reference given as sender is stored as it is (truthy)."""
    me = Reference()
    note = Note(text="a", sender=me)
    assert note.sender is me
    assert note.sender


def test_sender_accepts_an_actor_ref_as_it_is() -> None:
    """Promise 1: an ActorRef given as sender is stored as it is."""
    ref = Echo().reference
    note = Note(text="a", sender=ref)
    assert note.sender is ref


@pytest.mark.parametrize("bad", ["someone", 42, object(), {"reference": "x"}, [1]])
def test_sender_rejects_anything_else(bad: Any) -> None:
    """Promise 1: a sender that is neither an actor nor a reference is a ValidationError."""
    with pytest.raises(ValidationError):
        Note(text="a", sender=bad)


@pytest.mark.asyncio
async def test_sender_is_excluded_from_dump_and_json() -> None:
    """Promise 1: ``sender`` is not part of model_dump() nor of the JSON form."""
    note = Note(text="a", sender=Reference())
    dumped = note.model_dump()
    assert "sender" not in dumped
    assert dumped["text"] == "a"
    as_json = json.loads(note.model_dump_json())
    assert "sender" not in as_json
    assert as_json["text"] == "a"
    assert "creation_date" in as_json


# -- creation_date ----------------------------------------------------------------------------


def test_creation_date_is_timezone_aware_utc_set_at_creation() -> None:
    """Promise 1: creation_date is an aware UTC datetime taken when the message is created."""
    before = datetime.now(timezone.utc)
    note = Note(text="a")
    after = datetime.now(timezone.utc)
    assert note.creation_date.tzinfo is not None
    assert note.creation_date.utcoffset() == timedelta(0)
    assert before <= note.creation_date <= after


def test_creation_date_is_per_message() -> None:
    """Promise 1: each message gets its own creation date (a default factory, not a shared default)."""
    first = Note(text="a")
    second = Note(text="b")
    assert first.creation_date <= second.creation_date
    assert Note.model_fields["creation_date"].default_factory is not None


def test_creation_date_reads_the_same_everywhere() -> None:
    """Promise 1: the creation date taken at creation is the same datetime wherever it is read:
    the attribute, ``dict()``, ``repr``, ``model_dump`` and the JSON form."""
    note = Note(text="a")
    date = note.creation_date
    assert isinstance(date, datetime)
    assert note.creation_date == date  # read twice, the same value
    assert dict(note)["creation_date"] == date
    assert repr(date) in repr(note)
    assert note.model_dump()["creation_date"] == date
    assert note.model_dump(mode="json")["creation_date"] == date.isoformat().replace("+00:00", "Z")
    assert Note.model_validate_json(note.model_dump_json()).creation_date == date
    assert Note.model_json_schema(mode="serialization") == Note.model_json_schema()


def test_messages_equal_whether_their_date_was_taken_or_given() -> None:
    """Promise 1: a message built with another's creation date equals it, and hashes the same."""
    note = Note(text="a")
    copied = Note(text="a", creation_date=note.creation_date)
    assert note == copied
    assert copied == note
    assert hash(note) == hash(copied)
    assert note != Note(text="b", creation_date=note.creation_date)
    assert note != Note(text="a", creation_date=note.creation_date + timedelta(microseconds=1))
    assert note.model_copy() == note


def test_creation_date_is_frozen() -> None:
    """Promise 1: as every field of a message, the creation date cannot be changed."""
    note = Note(text="a")
    date = note.creation_date
    with pytest.raises(ValidationError):
        note.creation_date = datetime.now(timezone.utc)  # type: ignore[misc]
    assert note.creation_date == date


def test_creation_date_given_is_validated() -> None:
    """Promise 1: a creation date given at construction is validated (the fast default never
    replaces validation), and a timestamp is read as UTC."""
    with pytest.raises(ValidationError):
        Note(text="a", creation_date="yesterday")  # type: ignore[arg-type]
    given = Note(text="a", creation_date=0)  # type: ignore[arg-type]
    assert given.creation_date == datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- DataMessage ------------------------------------------------------------------------------


def test_typed_data_message_validates_its_data() -> None:
    """Promise 1: DataMessage[int](data="x") raises ValidationError."""
    with pytest.raises(ValidationError):
        DataMessage[int](data="x")  # type: ignore[arg-type]
    assert DataMessage[int](data=3).data == 3


def test_untyped_data_message_takes_any_data() -> None:
    """Promise 1: DataMessage(data=...) without a type parameter accepts anything."""
    payload: list[Any] = [1, "two", {"three": 3}]
    message: DataMessage[Any] = DataMessage(data=payload)
    assert message.data == payload
    assert DataMessage(data=None).data is None


# -- only messages can be sent ----------------------------------------------------------------

NOT_MESSAGES: list[Any] = [{"text": "a"}, 42, "text", None]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", NOT_MESSAGES)
async def test_actor_ref_tell_refuses_a_non_message(bad: Any) -> None:
    """Promise 1: ActorRef.tell raises TypeError at the sender for a non-Message."""
    actor = Echo()
    async with actor as ref:
        with pytest.raises(TypeError):
            await ref.tell(bad)
        assert await bounded(ref.ask(Ping(n=1))) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", NOT_MESSAGES)
async def test_actor_ref_tell_nowait_refuses_a_non_message(bad: Any) -> None:
    """Promise 1: ActorRef.tell_nowait raises TypeError at the sender for a non-Message."""
    async with Echo() as ref:
        with pytest.raises(TypeError):
            ref.tell_nowait(bad)
        assert await bounded(ref.ask(Ping(n=2))) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", NOT_MESSAGES)
async def test_ask_refuses_a_non_message(bad: Any) -> None:
    """Promise 1: ActorRef.ask and ask() raise TypeError at the sender for a non-Message."""
    async with Echo() as ref:
        with pytest.raises(TypeError):
            await bounded(ref.ask(bad))
        with pytest.raises(TypeError):
            await bounded(ask(ref, bad))
        assert await bounded(ref.ask(Ping(n=3))) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", NOT_MESSAGES)
async def test_reference_tell_refuses_a_non_message(bad: Any) -> None:
    """Promise 1: Reference.tell / tell_nowait raise TypeError for a non-Message; nothing lands."""
    me = Reference()
    with pytest.raises(TypeError):
        await me.tell(bad)
    with pytest.raises(TypeError):
        me.tell_nowait(bad)
    assert me.inbox.empty()


@pytest.mark.asyncio
async def test_non_message_refused_even_after_a_message_of_that_class_was_accepted() -> None:
    """Promise 1: the per-class acceptance cache does not let a later non-Message through."""
    async with Echo() as ref:
        await ref.tell(Ping(n=1))
        bad: Any = {"n": 1}
        with pytest.raises(TypeError):
            ref.tell_nowait(bad)
        assert await bounded(ref.ask(Ping(n=4))) == 4
