"""Verdicts of `actorio.compat` that a schema says little about at first sight: a dict's values,
literal values against a constrained type, a reply typed by a message and a plain type, a reply
with no JSON Schema, and unions of thousands of arms. Each breaking verdict is checked against
what the new version's validator really does with the old version's payload."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from actorio import Actor, InvalidPayload, Message, handles
from actorio._schema_diff import MAX_STEPS, TooComplex, compare_schemas
from actorio.compat import ProtocolError, check_compatibility


def taking(field: Any) -> type[Actor[Any]]:
    """An actor whose one message has one field ``x`` of type ``field``."""

    class P(Message):
        x: field

    class Taker(Actor[P]):
        @handles(P)
        async def take(self, msg: P) -> None:
            pass

    return Taker


def accepts(actor: type[Actor[Any]], x: Any) -> bool:
    try:
        actor.protocol.validate({"type": "P", "data": {"x": x}})
    except InvalidPayload:
        return False
    return True


@pytest.mark.parametrize(
    ("old", "new", "sent"),
    [
        (dict[str, int], dict[str, str], {"a": 1}),
        (dict[str, int], dict[str, Annotated[int, Field(le=3)]], {"a": 10}),
        (list[dict[str, int]], list[dict[str, Annotated[int, Field(ge=0)]]], [{"a": -1}]),
        (Literal[1, 2, 50], Annotated[int, Field(le=10)], 50),
        (Literal["abcdef"], Annotated[str, Field(max_length=3)], "abcdef"),
        (Literal["abc"], Annotated[str, Field(pattern="^z")], "abc"),
        (Literal["a", "bb"], Annotated[str, Field(min_length=2)], "a"),
        (Literal[3, 4], Annotated[int, Field(multiple_of=2)], 3),
    ],
)
def test_a_narrowing_the_schema_shows_is_breaking(old: Any, new: Any, sent: Any) -> None:
    before, after = taking(old), taking(new)
    assert accepts(before, sent)
    assert not accepts(after, sent)  # an old sender's payload, refused by the new receiver
    verdict = check_compatibility(before, after)
    assert not verdict.backward_compatible, verdict.report()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (dict[str, int], dict[str, float]),
        (Literal[1, 2], Annotated[int, Field(le=10)]),
        (Literal["ab"], Annotated[str, Field(max_length=3, pattern="^a")]),
        (Literal[4, 6], Annotated[int, Field(multiple_of=2)]),
    ],
)
def test_a_change_every_old_value_survives_is_backward_compatible(old: Any, new: Any) -> None:
    verdict = check_compatibility(taking(old), taking(new))
    assert verdict.backward_compatible, verdict.report()


def test_a_dicts_values_are_compared_both_ways() -> None:
    verdict = check_compatibility(taking(dict[str, int]), taking(dict[str, str]))
    assert [str(c) for c in verdict.backward] == ["P: data.x.* changed from integer to string"]
    assert [str(c) for c in verdict.forward] == ["P: data.x.* changed from integer to string"]


def answering(reply: Any) -> type[Actor[Any]]:
    """An actor whose one message ``Q`` is answered with a ``reply``."""

    class Q(Message[reply]):
        pass

    class Answerer(Actor[Q]):
        @handles(Q)
        async def answer(self, msg: Q) -> Any:
            return None

    return Answerer


class Pong(Message):
    v: int


def test_a_reply_of_a_message_and_a_plain_type_has_its_json_schema() -> None:
    mixed = answering(Pong | int)
    reply = mixed.protocol.json_schema()["x-actorio"]["messages"]["Q"]["reply"]
    assert {"type": "integer"} in reply["anyOf"]  # as it travels: pydantic's JSON of the union
    verdict = check_compatibility(mixed, answering(str))
    assert not verdict.backward_compatible, verdict.report()  # old askers read no string
    assert check_compatibility(mixed, answering(Pong | int)).compatible("full")


def test_a_reply_with_no_json_schema_is_compared_by_its_type() -> None:
    event, lock = answering(asyncio.Event), answering(asyncio.Lock)
    assert check_compatibility(event, answering(asyncio.Event)).compatible("full")
    verdict = check_compatibility(event, lock)
    assert not verdict.backward_compatible, verdict.report()
    assert not verdict.forward_compatible, verdict.report()
    assert not check_compatibility(event, answering(int)).backward_compatible


def test_thousands_of_discriminated_arms_are_matched_by_their_constants() -> None:
    def arms(keys: range) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "object", "properties": {"k": {"const": k}}, "required": ["k"]} for k in keys]
        }

    # Each arm tried against every other would take about 4.5 million steps: over the budget.
    problems = compare_schemas(arms(range(0, 3000)), arms(range(1, 3001)), payload=False, reader_is_new=True)
    assert problems == [("k", "narrowed", "k no longer accepts 3000")]


def test_unions_too_large_to_compare_are_an_error_not_an_endless_run() -> None:
    strings = {"anyOf": [{"type": "string", "maxLength": n} for n in range(1, 400)]}
    numbers = {"anyOf": [{"type": "integer", "maximum": n} for n in range(1, 400)]}
    with pytest.raises(TooComplex, match=f"more than {MAX_STEPS:,}"):
        compare_schemas(numbers, strings, payload=False, reader_is_new=True)
    document = {"x-actorio": {"format": 2, "actor": "A", "messages": {}}}
    old = {**document, "x-actorio": {**document["x-actorio"], "messages": {"m": _entry(strings)}}}
    new = {**document, "x-actorio": {**document["x-actorio"], "messages": {"m": _entry(numbers)}}}
    with pytest.raises(ProtocolError, match="too large to compare"):
        check_compatibility(old, new)


def _entry(payload: dict[str, Any]) -> dict[str, Any]:
    return {"class": "m.C", "aliases": [], "payload": payload, "reply": {"type": "null"}}
