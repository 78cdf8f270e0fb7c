"""The wire rules of ``actorio.nats``, without a server: the address rule for replies and
senders, the bounds of error replies, reading any error body, and the ``Actorio-Timeout`` header."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from typing import Any, ClassVar, Literal, TypeVar

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from actorio import NO_SENDER, Actor, ActorioException, InvalidPayload, Message, PayloadError, handles
from actorio.lowlevel import may_hold_float, wire_envelope_model
from actorio.nats import RemoteError, ReplyTooLarge, _codec
from actorio.nats._addresses import Destinations, check_subject_prefix
from actorio.nats._codec import (
    MAX_ASK_WAIT,
    decode_error,
    encode_error,
    encode_message,
    fields_validator,
    message_validator,
    read_reply,
    reply_codec,
    timeout_of,
)


def test_the_address_rule() -> None:
    rule = Destinations(["_INBOX", "actorio", "billing.replies."])
    for allowed in ("_INBOX.abc.def", "actorio.node.n1.t1", "actorio.actor.x", "billing.replies.7"):
        assert rule.refusal(allowed) is None, allowed
    refused = {
        "$JS.API.STREAM.DELETE.ORDERS": "'$'",
        "$KV.orders.x": "'$'",
        "$SYS.REQ.SERVER.PING": "'$'",
        "other.service.billing": "not under a prefix",
        "actorio": "not under a prefix",
        "actorioX.node.y": "not under a prefix",
        "billing.other": "not under a prefix",
        "a b": "' '",
        "actorio.node. x": "' '",
        "actorio.node.x\r\nPUB x 1": "'\\r'",
        "actorio.node.x\x00": "'\\x00'",
        "actorio..node": "empty token",
        "actorio.node.": "empty token",
        "actorio.*": "'*'",
        "actorio.>": "'>'",
        "_INBOX.é": "'é'",
        "": "empty",
        "actorio." + "x" * 300: "longer than",
    }
    for subject, why in refused.items():
        problem = rule.refusal(subject)
        assert problem is not None, subject
        assert why in problem, (subject, problem)


def test_the_stored_and_control_subjects_of_the_own_prefix_are_refused() -> None:
    """A reply or sender address naming a journal's events or the entity hosts' subjects would
    make the node append to a stream or speak for a host."""
    rule = Destinations(["_INBOX", "actorio"], ["actorio.events", "actorio.entities."])
    for subject in ("actorio.events.Account.alice", "actorio.entities.hosts", "actorio.entities.probe"):
        problem = rule.refusal(subject)
        assert problem is not None, subject
        assert "stored or control data" in problem
    assert rule.refusal("actorio.eventsX.y") is None  # a token of its own, not the events space
    assert rule.refusal("actorio.node.n1.t1") is None


def test_reply_prefixes_are_checked() -> None:
    assert check_subject_prefix("billing") == "billing."
    assert check_subject_prefix("billing.replies.") == "billing.replies."
    for bad in ("$JS.API", "$", "a b", "a.*", ">", "", "a..b", 7):
        with pytest.raises(ValueError, match=r"invalid reply prefix|is a string"):
            check_subject_prefix(bad)


def test_encode_error_is_bounded_for_any_invalid_payload() -> None:
    problems = tuple(PayloadError(("data", "k" * 10_000), "m" * 10_000, "kind") for _ in range(50))
    error = InvalidPayload("A" * 10_000, problems, tuple("T" * 1000 for _ in range(500)), "i" * 10_000)
    body = encode_error(error, "actor")
    assert len(body) < 20_000  # 20 problems and 50 names at most, each cut
    assert isinstance(decode_error(body, "x", Message()), InvalidPayload)
    huge_id = InvalidPayload("A", (), (), 2**70)
    assert "id" not in json.loads(encode_error(huge_id, "actor"))


MALFORMED = [
    b"",
    b"not json",
    b"[]",
    b"1",
    b"null",
    b'"text"',
    b'{"kind": 3}',
    b'{"kind": null}',
    b'{"kind": "invalid_payload", "errors": 5}',
    b'{"kind": "invalid_payload", "errors": [{"path": 1, "message": [], "kind": {}}, 7, null]}',
    b'{"kind": "invalid_payload", "accepted": "abc", "actor": [], "id": {"a": 1}}',
    b'{"kind": "error", "type": [1], "message": {"a": 1}, "traceback": 5, "module": null}',
    b'{"kind": "too_large", "size": "big", "limit": true}',
    b'{"kind": "full", "capacity": -1.5}',
    b'{"kind": "whatever"}',
    b"[" * 100_000,
    b'{"kind": "error", "message": "\xff\xfe"}',
]


@pytest.mark.parametrize("body", MALFORMED)
def test_decode_error_reads_any_body(body: bytes) -> None:
    error = decode_error(body, "liar", Message())
    assert isinstance(error, ActorioException)
    str(error)


def test_decode_error_bounds_what_another_sender_made_long() -> None:
    """An error body comes from the wire: whoever answers an ask may send fields of any length and
    any number. The asker's exception keeps them within `encode_error`'s own limits; what an
    actorio node sent (cut already, with its note) arrives as it was sent."""
    huge = "m" * 1_000_000
    forged = json.dumps({"kind": "error", "type": huge, "module": huge, "message": huge, "traceback": huge})
    error = decode_error(forged.encode(), "liar", Message())
    assert isinstance(error, RemoteError)
    assert len(error.type_name) < 300
    assert len(error.module) < 300
    assert len(error.remote_message) < 1_100
    assert len(error.remote_traceback) < 16_100
    assert len(str(error)) < 20_000
    long = "p" * 1_000
    many = json.dumps(
        {
            "kind": "invalid_payload",
            "actor": huge,
            "errors": [{"path": long, "message": long, "kind": long}] * 1_000,
            "accepted": [long] * 5_000,
        }
    )
    invalid = decode_error(many.encode(), "liar", Message())
    assert isinstance(invalid, InvalidPayload)
    assert len(invalid.errors) == 20
    assert len(invalid.accepted) == 50
    assert len(str(invalid)) < 20_000
    sent = encode_error(ValueError("x" * 5_000), "a", debug=True)
    received = decode_error(sent, "a", Message())
    assert isinstance(received, RemoteError)
    assert received.remote_message == json.loads(sent)["message"]
    assert received.remote_message.endswith("(5000 characters)")


def test_an_error_reply_cannot_drive_a_terminal_or_a_log() -> None:
    """An error reply's text ends in logs and tracebacks: its escape sequences and control
    characters arrive escaped (a message's newlines stay: errors span lines)."""
    evil = "\x1b[2J\x1b]0;TITLE\x07\x00\u202e"
    body = json.dumps({"kind": "error", "type": "X" + evil, "module": evil, "message": "a\nb" + evil})
    error = decode_error(body.encode(), "liar", Message())
    assert isinstance(error, RemoteError)
    for text in (error.type_name, error.module, error.remote_message, str(error)):
        assert not any(raw in text for raw in ("\x1b", "\x07", "\x00", "\u202e")), repr(text)
    assert error.remote_message.startswith("a\nb\\x1b[2J")


def test_a_reply_is_read_by_its_status_only_when_it_is_ok_or_error() -> None:
    body = b"3"
    assert read_reply("x", {"Actorio-Status": "ok"}, body, None) == 3
    for status in ("OK", "maybe", "", "o" * 10_000):
        with pytest.raises(RemoteError, match="InvalidReply") as caught:
            read_reply("x", {"Actorio-Status": status}, body, None)
        assert len(str(caught.value)) < 300
    with pytest.raises(RemoteError, match=r"InvalidReply.*missing"):
        read_reply("x", {}, body, None)
    with pytest.raises(RemoteError, match=r"InvalidReply.*missing"):
        read_reply("x", None, b'{"seq": 1}', None)
    with pytest.raises(ValueError, match="durable mailbox"):
        read_reply("x", None, b'{"stream": "ACTORIO_x", "seq": 1}', None)


def test_the_timeout_header_is_bounded() -> None:
    def of(value: str) -> float:
        return timeout_of({"Actorio-Timeout": value}, 30.0)

    assert of("5") == 5.0
    assert of("0.25") == 0.25
    assert of(str(MAX_ASK_WAIT)) == MAX_ASK_WAIT
    for bad in (
        "inf",
        "-inf",
        "nan",
        "NaN",
        "1e308",
        "0",
        "-1",
        "abc",
        "",
        "1" * 1000,
        str(MAX_ASK_WAIT * 2),
    ):
        assert of(bad) == 30.0, bad
    assert timeout_of(None, 30.0) == 30.0
    assert timeout_of({}, 30.0) == 30.0


def test_a_reply_too_large_passed_on_stays_itself() -> None:
    error = decode_error(
        encode_error(ReplyTooLarge("inner", 2_000_000, 1_048_576), "outer"), "outer", Message()
    )
    assert isinstance(error, ReplyTooLarge)
    assert (error.size, error.limit, error.actor) == (2_000_000, 1_048_576, "outer")


class Tree(BaseModel):
    children: list[Tree] = []
    name: str = ""


class Point(BaseModel):
    x: float


@dataclasses.dataclass
class Pair:
    left: float
    right: float


T = TypeVar("T")


def test_which_types_may_hold_a_float() -> None:
    """Only a value that may hold a float is searched for NaN: the rest costs nothing more."""

    class Plain(Message):
        n: int
        text: str | None = None
        tags: tuple[str, ...] = ()
        tree: Tree | None = None
        kind: Literal["a", "b"] = "a"

    class Nested(Message):
        points: dict[str, list[Point]] | None = None

    assert not may_hold_float(Plain)
    assert may_hold_float(Nested)
    for yes in (float, Point, Pair, list[float], dict[str, float] | None, Any, object, T, "Forward"):
        assert may_hold_float(yes), yes
    for no in (int, str, None, type(None), list[str], Tree, tuple[int, ...], Literal[1, "x"]):
        assert not may_hold_float(no), no


def test_a_nan_anywhere_is_named_by_its_path() -> None:
    class Nested(Message):
        points: dict[str, list[Point]] | None = None
        pair: Pair | None = None

    with pytest.raises(ValueError, match=r"Nested.points\['k'\]\[1\].x is nan: JSON has no NaN"):
        encode_message(Nested(points={"k": [Point(x=1.0), Point(x=math.nan)]}))
    with pytest.raises(ValueError, match=r"Nested.pair.right is -inf"):
        encode_message(Nested(pair=Pair(1.0, -math.inf)))
    assert b'"pair":null' in encode_message(Nested())  # a null that lost nothing

    class Measure(Message[list[float]]):
        pass

    with pytest.raises(ValueError, match=r"the reply\[2\] is inf"):
        reply_codec(Measure).encode([1.0, 2.0, math.inf])


# -- what a published actor receives --------------------------------------------------------


class _Renamed(Message[None]):
    wire_name: ClassVar[str] = "renamed"
    wire_aliases: ClassVar[tuple[str, ...]] = ("Old",)
    n: int


class _Plain(Message[int]):
    text: str = "x"


class _Receiving(Actor[_Renamed | _Plain]):
    @handles(_Renamed)
    async def renamed(self, msg: _Renamed) -> None:
        pass

    @handles(_Plain)
    async def plain(self, msg: _Plain) -> int:
        return 1


class _Untyped(Actor):
    pass


def test_the_receiving_validator_agrees_with_the_protocol() -> None:
    """What a published actor receives is validated by its protocol's wire models in one call:
    the same messages (own class, no sender) for valid payloads, the same `InvalidPayload` (every
    problem listed) for invalid ones, whatever the bytes."""
    validator = message_validator(_Receiving)
    assert message_validator(_Receiving) is validator  # made once per class
    protocol = _Receiving.protocol
    valid = [
        b'{"type":"renamed","data":{"n":1}}',
        b'{"type":"Old","data":{"n":"2"}}',
        b'{"type":"_Plain"}',
    ]
    dated = b'{"type":"_Plain","data":{"text":"y","creation_date":"2026-01-01T00:00:00Z"}}'
    assert validator.validate(dated) == protocol.validate(dated)
    for payload in valid:
        message, expected = validator.validate(payload), protocol.validate(payload)
        assert type(message) is type(expected)
        undated = {"creation_date"}  # made when the payload has none: a moment apart
        assert message.model_dump(exclude=undated) == expected.model_dump(exclude=undated)
        assert message.sender is NO_SENDER
    invalid = [
        b"",
        b"[]",
        b"null",
        b"not json",
        b'{"type":"renamed","data":{"n":1,"sender":"x"}}',
        b'{"type":"renamed","data":{"n":1,"extra":1}}',
        b'{"type":"renamed","data":{}}',
        b'{"type":"Unknown","data":{}}',
        b'{"data":{"n":1}}',
        b'{"type":"renamed","data":{"n":1},"more":1}',
        b"[" * 10_000,
        b'{"type":"renamed","data":{"n":1}' + b"\xff",
    ]
    for payload in invalid:
        with pytest.raises(InvalidPayload) as fast:
            validator.validate(payload)
        with pytest.raises(InvalidPayload) as slow:
            protocol.validate(payload)
        assert fast.value.errors == slow.value.errors, payload
        assert fast.value.accepted == slow.value.accepted
    with pytest.raises(InvalidPayload, match="accepts no wire messages"):
        message_validator(_Untyped).validate(b'{"type":"_Plain"}')


class _Leaf(BaseModel):
    x: int


class _Tree(BaseModel):
    kids: list[_Tree] = []


class _Nested(Message):
    leaf: _Leaf
    other: _Leaf | None = None


class _Grown(Message[_Nested]):
    wire_name: ClassVar[str] = "grown"
    wire_aliases: ClassVar[tuple[str, ...]] = ("planted",)
    tree: _Tree = _Tree()
    leaf: _Leaf | None = None  # _Leaf's definition, shared with _Nested's


class _Chain(Message[int]):
    next: _Chain | None = None


class _Structured(Actor[_Nested | _Grown | _Chain]):
    @handles(_Nested)
    async def nested(self, msg: _Nested) -> None:
        pass

    @handles(_Grown)
    async def grown(self, msg: _Grown) -> _Nested:
        return _Nested(leaf=_Leaf(x=1))

    @handles(_Chain)
    async def chain(self, msg: _Chain) -> int:
        return 1


def _undated(message: Message[Any]) -> str:
    """A message's repr without its datetimes (made when a payload has none: a moment apart)."""
    return re.sub(r"datetime\.datetime\([^)]*\)", "...", repr(message))


def test_the_receiving_validator_agrees_with_the_protocol_on_nested_models() -> None:
    """Nested, shared and recursive models, aliases, payloads without data: every combination is
    accepted or refused as the protocol does, and gives the same message."""
    validator, protocol = message_validator(_Structured), _Structured.protocol
    names = ["_Nested", "grown", "planted", "_Chain", "Unknown", 3]
    datas: list[object] = [
        {},
        {"leaf": {"x": 1}},
        {"leaf": {"x": "1"}, "other": {"x": 2}},
        {"leaf": {"x": 1}, "extra": 1},
        {"tree": {"kids": [{"kids": []}]}, "leaf": {"x": 1}},
        {"tree": {"kids": [{"kids": 1}]}},
        {"next": {"next": {"next": None}}},
        {"next": {"next": "x"}},
        {"sender": "x"},
        None,
    ]
    extras: list[dict[str, object]] = [{}, {"id": 1}, {"reply_to": 2.5}, {"more": 1}]
    for name, data, extra, with_data in itertools.product(names, datas, extras, (True, False)):
        payload = json.dumps({"type": name, **({"data": data} if with_data else {}), **extra}).encode()
        expected: Message[Any] | InvalidPayload
        try:
            expected = protocol.validate(payload)
        except InvalidPayload as refused:
            expected = refused
        if isinstance(expected, InvalidPayload):
            with pytest.raises(InvalidPayload) as fast:
                validator.validate(payload)
            assert fast.value.errors == expected.errors, payload
            continue
        message = validator.validate(payload)
        assert type(message) is type(expected), payload
        assert _undated(message) == _undated(expected), payload
    codec = reply_codec(_Grown)
    reply = codec.decode(encode_message(_Nested(leaf=_Leaf(x=5))))
    assert type(reply) is _Nested
    assert reply.leaf == _Leaf(x=5)
    with pytest.raises(ValueError, match="invalid reply"):
        codec.decode(b'{"type":"_Nested","data":{"leaf":{"x":1},"extra":1}}')


def test_an_envelope_of_another_shape_is_validated_as_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fields_validator` reads pydantic's schema of each envelope; one it does not know the shape
    of (here, an envelope with a model validator) is validated by the envelope models themselves,
    with the same result."""
    made = wire_envelope_model

    def odd(message_type: type[Message[Any]], name: str, aliases: tuple[str, ...]) -> type[BaseModel]:
        class Odd(made(message_type, name, aliases)):  # type: ignore[misc]  # pyright: ignore[reportUntypedBaseClass]
            @model_validator(mode="before")
            @classmethod
            def unchanged(cls, value: Any) -> Any:
                return value

        return Odd

    monkeypatch.setattr(_codec, "wire_envelope_model", odd)
    validate, classes = fields_validator([(_Nested, "_Nested", ()), (_Grown, "grown", ("planted",))])
    fields = validate.validate_json(b'{"type":"planted","data":{"leaf":{"x":"3"}}}')
    assert classes[fields["type"]] is _Grown
    assert fields["data"].leaf == _Leaf(x=3)
    for refused in (b'{"type":"grown","data":{},"more":1}', b'{"type":"other"}'):
        with pytest.raises(ValidationError):
            validate.validate_json(refused)


class _Found(Message):
    n: int


class _FoundAgain(Message):
    wire_aliases: ClassVar[tuple[str, ...]] = ("_Found",)
    n: int


class _Lookup(Message[_Found | _FoundAgain]):
    pass


def test_a_wire_name_two_reply_classes_claim_is_refused() -> None:
    with pytest.raises(TypeError, match="mapped to multiple choices"):
        reply_codec(_Lookup).decode(encode_message(_Found(n=1)))


_interned: dict[int, Any] = {}


class _Replaced(Message):
    """A message whose validators hand back another instance than the one validated."""

    x: int

    @model_validator(mode="wrap")
    @classmethod
    def interned(cls, value: Any, handler: Any) -> Any:
        made = handler(value)
        return _interned.setdefault(made.x, made)

    @model_validator(mode="after")
    def rebuilt(self) -> Any:
        return _Replaced.model_construct(x=self.x)


class _Replacing(Actor[_Replaced]):
    @handles(_Replaced)
    async def replaced(self, msg: _Replaced) -> None:
        pass


def test_a_message_replaced_by_its_validators_is_of_its_own_class() -> None:
    validator, protocol = message_validator(_Replacing), _Replacing.protocol
    for _ in range(3):
        for payload in (b'{"type":"_Replaced","data":{"x":1}}', b'{"type":"_Replaced","data":{"x":2}}'):
            assert type(validator.validate(payload)) is _Replaced
            assert type(protocol.validate(payload)) is _Replaced
