"""actorio.testing.assert_message: a message compared by class and content, since two messages
created apart are never ``==`` (their ``creation_date`` differs)."""

from __future__ import annotations

import pytest
from pydantic import Field
from typing_extensions import assert_type

from actorio import Actor, Message, Reference, handles
from actorio.testing import assert_message, run_handler
from actorio.testing._describe import same_content

pytestmark = pytest.mark.asyncio


class Total(Message):
    value: int


class Other(Message):
    value: int


class Wrapped(Message):
    inner: Total


class Add(Message[Total]):
    amount: int


class Adder(Actor[Add]):
    @handles(Add)
    async def add(self, msg: Add) -> Total:
        return Total(value=2 + msg.amount)


async def test_a_reply_equal_in_content_is_not_equal_but_matches() -> None:
    outcome = await run_handler(Adder(), Add(amount=2))
    assert outcome.reply != Total(value=4)  # what a test writing == would meet
    reply = assert_message(outcome.reply, Total(value=4))
    assert_type(reply, Total)
    assert reply is outcome.reply


async def test_sender_and_creation_date_are_ignored_at_every_level() -> None:
    me = Reference()
    assert assert_message(Wrapped(inner=Total(value=1), sender=me), Wrapped(inner=Total(value=1)))


async def test_a_different_value_or_class_fails_naming_both() -> None:
    with pytest.raises(AssertionError, match=r"^expected Total\(value=4\), but got Total\(value=3\)$"):
        assert_message(Total(value=3), Total(value=4))
    with pytest.raises(AssertionError, match=r"^expected Total\(value=4\), but got Other\(value=4\)$"):
        assert_message(Other(value=4), Total(value=4))
    with pytest.raises(AssertionError, match=r"^expected Total\(value=4\), but got 4$"):
        assert_message(4, Total(value=4))
    with pytest.raises(AssertionError, match=r"^expected Total\(value=4\), but got None$"):
        assert_message(None, Total(value=4))


async def test_a_class_expects_an_instance() -> None:
    total: object = Total(value=1)
    assert_type(assert_message(total, Total), Total)
    with pytest.raises(AssertionError, match=r"^expected a Other, but got Total\(value=1\)$"):
        assert_message(total, Other)


class Batch(Message):
    items: list[Total]
    by_name: dict[str, Total] = Field(default_factory=dict)
    pair: tuple[Total, ...] = ()
    unique: frozenset[int] = frozenset()


async def test_messages_in_lists_dicts_and_tuples_are_compared_by_content() -> None:
    def batch(value: int) -> Batch:
        return Batch(
            items=[Total(value=value)],
            by_name={"a": Total(value=value)},
            pair=(Total(value=1), Total(value=value)),
            unique=frozenset({1, value}),
        )

    assert batch(2) != batch(2)  # created apart: their creation dates differ
    assert_message(batch(2), batch(2))
    with pytest.raises(AssertionError):
        assert_message(batch(2), batch(3))
    with pytest.raises(AssertionError):
        assert_message(Batch(items=[Total(value=1)]), Batch(items=[Total(value=1), Total(value=1)]))
    # Messages hash by identity: a set may hold two equal in content, each matched once.
    assert same_content({Total(value=1), Total(value=1)}, {Total(value=1), Total(value=1)})
    assert not same_content({Total(value=1), Total(value=1)}, {Total(value=1), Total(value=2)})
