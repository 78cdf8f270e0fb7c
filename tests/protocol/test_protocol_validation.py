"""Actor.protocol: its entries, wire names, validation of wire payloads, their errors, and dump."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar
from uuid import UUID

import pytest
from pydantic import BaseModel, Field, field_validator

from actorio import (
    NO_SENDER,
    Actor,
    ActorioException,
    ActorProtocol,
    DataMessage,
    Envelope,
    InvalidPayload,
    Message,
    PayloadError,
    ProtocolEntry,
    handles,
)

BOUND = 10.0
T = TypeVar("T")


async def bounded(awaitable: Coroutine[Any, Any, T]) -> T:
    return await asyncio.wait_for(awaitable, BOUND)


class Point(BaseModel):
    x: int
    y: int


class Reply(Message):
    text: str


class Rich(Message[Reply]):
    """A message with one field of each common kind."""

    wire_name: ClassVar[str] = "rich"
    name: str
    ratio: float
    when: datetime
    ident: UUID
    amount: Decimal
    pair: tuple[int, str]
    mapping: dict[str, int]
    count: int = 0
    tags: list[str] = Field(default_factory=list)
    point: Point | None = None
    kind: Literal["a", "b"] = "a"


class Ping(Message[int]):
    n: int


class Stop(Message):
    pass


class Checked(Message):
    """A message whose own validator refuses odd numbers."""

    wire_name: ClassVar[str] = "checked"
    even: int

    @field_validator("even")
    @classmethod
    def _must_be_even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even")
        return value


class Server(Actor[Rich | Ping | Stop | Checked]):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Message[Any]] = []

    @handles(Rich)
    async def rich(self, msg: Rich) -> Reply:
        self.seen.append(msg)
        return Reply(text=msg.name)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        self.seen.append(msg)
        return msg.n + 1

    @handles(Stop, Checked)
    async def other(self, msg: Stop | Checked) -> None:
        self.seen.append(msg)


ACCEPTED = ("rich", "Ping", "Stop", "checked")


def rich_message() -> Rich:
    return Rich(
        name="ünï ✓",
        ratio=0.25,
        when=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
        ident=UUID("12345678-1234-5678-1234-567812345678"),
        amount=Decimal("12.50"),
        pair=(1, "one"),
        mapping={"a": 1},
        count=3,
        tags=["x", "y"],
        point=Point(x=1, y=2),
        kind="b",
    )


def invalid(payload: Any, protocol: ActorProtocol[Any] = Server.protocol) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as caught:
        protocol.validate(payload)
    return caught.value


# -- the protocol as data ------------------------------------------------------------------------


def test_entries_give_wire_name_class_reply_type_and_handler() -> None:
    protocol = Server.protocol
    assert isinstance(protocol, ActorProtocol)
    assert protocol.wire_names == ACCEPTED
    assert list(protocol) == [
        ProtocolEntry("rich", Rich, Reply, Server.rich),
        ProtocolEntry("Ping", Ping, int, Server.ping),
        ProtocolEntry("Stop", Stop, None, Server.other),
        ProtocolEntry("checked", Checked, None, Server.other),
    ]
    assert len(protocol) == 4
    assert protocol["Ping"] is protocol[Ping]
    assert protocol.name == f"{__name__}.Server"
    assert repr(protocol) == f"<ActorProtocol {__name__}.Server: rich, Ping, Stop, checked>"


def test_lookup_by_subclass_finds_the_nearest_member_and_unknown_keys_raise() -> None:
    class LoudPing(Ping):
        pass

    assert Server.protocol[LoudPing].message_type is Ping
    with pytest.raises(KeyError, match="no message type 'nope'"):
        Server.protocol["nope"]
    with pytest.raises(KeyError):
        Server.protocol[Reply]


def test_protocol_is_made_once_per_class_and_read_the_same_from_an_instance() -> None:
    assert Server.protocol is Server.protocol
    assert Server().protocol is Server.protocol


def test_a_subclass_has_its_own_protocol_with_its_own_handlers() -> None:
    class LoudServer(Server):
        @handles(Ping)
        async def louder(self, msg: Ping) -> int:
            return msg.n * 100

    assert LoudServer.protocol is not Server.protocol
    assert LoudServer.protocol["Ping"].handler is LoudServer.louder
    assert LoudServer.protocol["rich"].handler is Server.rich


def test_reply_types_are_read_from_the_message_base() -> None:
    assert Server.protocol[Rich].reply_type is Reply
    assert Server.protocol[Ping].reply_type is int
    assert Server.protocol[Stop].reply_type is None

    class Holder(Actor[DataMessage[int]]):
        @handles(DataMessage)
        async def data(self, msg: DataMessage[int]) -> None:
            pass

    assert Holder.protocol.entries[0].reply_type is Any


def test_an_actor_without_a_protocol_argument_accepts_the_types_its_handlers_take() -> None:
    class Base(Actor):
        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return msg.n

    class Untyped(Base):
        @handles(Stop)
        async def stop_now(self, msg: Stop) -> None:
            pass

    assert Untyped.protocol.wire_names == ("Ping", "Stop")
    assert isinstance(Untyped.protocol.validate({"type": "Ping", "data": {"n": 1}}), Ping)


def test_an_actor_with_only_handle_message_accepts_no_payload() -> None:
    class Original(Actor):
        async def handle_message(self, message: Any) -> None:
            pass

    assert Original.protocol.wire_names == ()
    assert Actor.protocol.wire_names == ()
    error = invalid({"type": "Ping", "data": {"n": 1}}, Original.protocol)
    assert error.accepted == ()
    assert error.errors == (
        PayloadError(("type",), f"{Original.protocol.name} accepts no wire messages", "unknown_type"),
    )


def test_handle_message_is_the_handler_of_a_member_without_one() -> None:
    class Fallback(Actor[Ping | Stop]):
        @handles(Stop)
        async def stop_now(self, msg: Stop) -> None:
            pass

        async def handle_message(self, message: Any) -> Any:
            return None

    assert Fallback.protocol["Ping"].handler is Fallback.handle_message


# -- wire names ----------------------------------------------------------------------------------


def test_wire_name_defaults_to_the_class_name_and_is_not_inherited() -> None:
    class Richer(Rich):
        pass

    class Named(Rich):
        wire_name: ClassVar[str] = "named"

    class Both(Actor[Rich | Richer | Named]):
        @handles(Rich)
        async def rich(self, msg: Rich) -> Reply:
            return Reply(text="")

    assert Both.protocol.wire_names == ("rich", "Richer", "named")
    assert (
        type(Both.protocol.validate({"type": "Richer", "data": Server.protocol.dump(rich_message())["data"]}))
        is Richer
    )


def test_two_message_types_with_one_wire_name_is_a_type_error_at_class_creation() -> None:
    class Other(Message):
        wire_name: ClassVar[str] = "Ping"

    with pytest.raises(TypeError, match=r"two message types with the wire name 'Ping'.*Ping and .*Other"):

        class Clash(Actor[Ping | Other]):
            @handles(Ping, Other)  # type: ignore[actorio-handler]  # never asked
            async def both(self, msg: Ping | Other) -> None:
                pass


def test_handled_types_sharing_a_wire_name_is_a_type_error_too() -> None:
    class Other(Message):
        wire_name: ClassVar[str] = "Stop"

    with pytest.raises(TypeError, match="two message types with the wire name 'Stop'"):

        class Clash(Actor):
            @handles(Stop, Other)
            async def both(self, msg: Stop | Other) -> None:
                pass


def test_a_wire_name_must_be_a_non_empty_string() -> None:
    class Empty(Message):
        wire_name: ClassVar[str] = ""

    with pytest.raises(TypeError, match="wire_name must be a non-empty str"):

        class Bad(Actor[Empty]):
            @handles(Empty)
            async def empty(self, msg: Empty) -> None:
                pass


# -- validate --------------------------------------------------------------------------------------


def test_validate_takes_a_dict_text_or_bytes_and_returns_the_typed_message() -> None:
    payload = {"type": "Ping", "data": {"n": 41}}
    for raw in (
        payload,
        json.dumps(payload),
        json.dumps(payload).encode(),
        bytearray(json.dumps(payload).encode()),
    ):
        message = Server.protocol.validate(raw)
        assert type(message) is Ping
        assert message.n == 41
        assert message.sender is NO_SENDER


def test_creation_date_is_optional_and_read_when_given() -> None:
    before = datetime.now(timezone.utc)
    message = Server.protocol.validate({"type": "Stop"})
    assert before <= message.creation_date <= datetime.now(timezone.utc)
    given = Server.protocol.validate({"type": "Stop", "data": {"creation_date": "2020-01-02T03:04:05Z"}})
    assert given.creation_date == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_the_message_class_s_own_validators_run() -> None:
    assert isinstance(Server.protocol.validate({"type": "checked", "data": {"even": 2}}), Checked)
    error = invalid({"type": "checked", "data": {"even": 3}})
    assert error.errors == (PayloadError(("data", "even"), "Value error, must be even", "value_error"),)


def test_validate_envelope_gives_the_correlation_fields() -> None:
    envelope = Server.protocol.validate_envelope(
        '{"type": "Ping", "data": {"n": 1}, "id": 7, "reply_to": "r-1"}'
    )
    assert envelope == Envelope(Ping(n=1, creation_date=envelope.message.creation_date), 7, "r-1")
    assert Server.protocol.validate_envelope({"type": "Stop", "id": None}).id is None


@pytest.mark.parametrize("raw", [rich_message(), Ping(n=3), Stop(), Checked(even=4)])
def test_dump_round_trips(raw: Message[Any]) -> None:
    wire = Server.protocol.dump(raw)
    assert Server.protocol.validate(wire) == raw
    assert Server.protocol.validate(json.dumps(wire)) == raw
    assert Server.protocol.validate(json.dumps(wire).encode()) == raw


def test_dump_gives_a_json_ready_dict_without_the_sender() -> None:
    message = Ping(n=1, sender=Server(), creation_date=datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert Server.protocol.dump(message) == {
        "type": "Ping",
        "data": {"n": 1, "creation_date": "2024-01-01T00:00:00Z"},
    }
    wire = Server.protocol.dump(rich_message(), id=1, reply_to="x")
    assert json.loads(json.dumps(wire)) == wire
    assert (wire["type"], wire["id"], wire["reply_to"]) == ("rich", 1, "x")
    assert wire["data"]["amount"] == "12.50"
    assert Server.protocol.dump(Reply(text="hi"))["type"] == "Reply"  # a reply: any message dumps
    with pytest.raises(TypeError, match="dump\\(\\) takes a Message, not dict"):
        Server.protocol.dump({"type": "Ping"})  # type: ignore[arg-type]


# -- invalid payloads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"type": "nope"}, [(("type",), "unknown message type 'nope'", "unknown_type")]),
        ({"type": 5}, [(("type",), "unknown message type 5", "unknown_type")]),
        ({"data": {"n": 1}}, [(("type",), "Field required: the message's wire name", "missing_type")]),
        ({"type": "Ping", "data": {}}, [(("data", "n"), "Field required", "missing")]),
        ({"type": "Ping"}, [(("data",), "Field required", "missing")]),
        (
            {"type": "Ping", "data": {"n": 1, "m": 2}},
            [(("data", "m"), "Extra inputs are not permitted", "extra_forbidden")],
        ),
        (
            {"type": "Ping", "data": {"n": 1}, "extra": 1},
            [(("extra",), "Extra inputs are not permitted", "extra_forbidden")],
        ),
        (
            {"type": "Ping", "data": {"n": 1, "sender": None}},
            [(("data", "sender"), "Extra inputs are not permitted", "extra_forbidden")],
        ),
        (
            {"type": "Ping", "data": {"n": "many"}},
            [
                (
                    ("data", "n"),
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                )
            ],
        ),
        (
            {"type": "Ping", "data": [1]},
            [(("data",), "Input should be a valid dictionary or instance of Ping", "model_type")],
        ),
        (
            {"type": "Ping", "data": {"n": 1}, "id": True},
            [(("id",), "must be a string, an integer or null", "invalid_id")],
        ),
        (
            {"type": "rich", "data": {**Server.protocol.dump(rich_message())["data"], "point": {"x": 1}}},
            [(("data", "point", "y"), "Field required", "missing")],
        ),
        ("{not json", [((), "malformed JSON: key must be a string at line 1 column 2", "invalid_json")]),
        (b"", [((), "malformed JSON: EOF while parsing a value at line 1 column 0", "invalid_json")]),
        ("[1, 2]", [((), "expected a JSON object, got an array", "not_an_object")]),
        ('"text"', [((), "expected a JSON object, got a string", "not_an_object")]),
        ("3", [((), "expected a JSON object, got a number", "not_an_object")]),
        ("null", [((), "expected a JSON object, got null", "not_an_object")]),
        ([{"type": "Ping"}], [((), "expected a JSON object, got list", "not_an_object")]),
        (None, [((), "expected a JSON object, got NoneType", "not_an_object")]),
    ],
)
def test_each_invalid_payload_raises_one_clear_error(payload: Any, expected: list[tuple[Any, ...]]) -> None:
    error = invalid(payload)
    assert isinstance(error, ActorioException)
    assert [tuple(problem) for problem in error.errors] == expected
    assert error.accepted == ACCEPTED
    assert error.actor == f"{__name__}.Server"
    # No pydantic internals in the traceback: nothing chained, or the context suppressed.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    for problem in error.errors:
        assert f"{problem.path or 'payload'}: {problem.message}" in str(error)
    assert str(error).endswith("(accepted types: rich, Ping, Stop, checked)")


def test_every_problem_is_reported_at_once() -> None:
    error = invalid({"type": "Ping", "data": {"m": 1}, "reply_to": 1.5})
    assert error.paths == ("data.n", "data.m", "reply_to")
    assert str(error) == (
        f"invalid payload for {__name__}.Server: data.n: Field required; "
        "data.m: Extra inputs are not permitted; reply_to: must be a string, an integer or null "
        "(accepted types: rich, Ping, Stop, checked)"
    )


def test_the_error_carries_the_payload_id_when_it_can_be_read() -> None:
    assert invalid({"type": "nope", "id": 3}).id == 3
    assert invalid('{"type": "nope", "id": "a"}').id == "a"
    assert invalid('{"type": "nope", "id": [1]}').id is None
    assert invalid("{broken").id is None


def test_to_dict_is_a_json_ready_description() -> None:
    error = invalid({"type": "Ping", "data": {}})
    assert json.loads(json.dumps(error.to_dict())) == {
        "message": str(error),
        "errors": [{"path": "data.n", "message": "Field required", "kind": "missing"}],
        "accepted": list(ACCEPTED),
    }


# -- laziness --------------------------------------------------------------------------------------


def test_the_validator_is_built_once_on_first_use_and_spawning_does_no_protocol_work() -> None:
    class Fresh(Actor[Ping]):
        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return msg.n

    Fresh()
    assert "_actor_wire_protocol" not in vars(Fresh)  # spawning an actor does not make the protocol
    protocol = Fresh.protocol
    assert "_adapter" not in vars(protocol)  # nor does reading it build the validator
    protocol.validate({"type": "Ping", "data": {"n": 1}})
    adapter = vars(protocol)["_adapter"]
    protocol.validate({"type": "Ping", "data": {"n": 2}})
    assert vars(protocol)["_adapter"] is adapter


# -- tell_payload and ask_payload ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ask_payload_validates_asks_and_returns_the_reply() -> None:
    async with Server() as ref:
        assert await bounded(ref.ask_payload('{"type": "Ping", "data": {"n": 1}}')) == 2
        reply = await bounded(ref.ask_payload(Server.protocol.dump(rich_message()), timeout=BOUND))
        assert reply == Reply(text="ünï ✓", creation_date=reply.creation_date)


@pytest.mark.asyncio
async def test_tell_payload_delivers_the_typed_message() -> None:
    server = Server()
    async with server as ref:
        await ref.tell_payload(b'{"type": "Stop"}')
        await bounded(ref.ask(Ping(n=0)))  # FIFO barrier: the Stop was handled first
        assert [type(message) for message in server.seen] == [Stop, Ping]


@pytest.mark.asyncio
async def test_an_invalid_payload_raises_at_the_caller_and_nothing_is_queued() -> None:
    server = Server()
    async with server as ref:
        with pytest.raises(InvalidPayload):
            await ref.tell_payload({"type": "Ping", "data": {"n": "x"}})
        with pytest.raises(InvalidPayload):
            await bounded(ref.ask_payload({"type": "nope"}))
        assert not server._actor_mailbox.queue  # pyright: ignore[reportPrivateUsage]
        await bounded(ref.ask(Ping(n=0)))
        assert [type(message) for message in server.seen] == [Ping]


@pytest.mark.asyncio
async def test_a_narrowed_reference_refuses_a_valid_payload_outside_its_protocol() -> None:
    server = Server()
    async with server as ref:
        pings = ref.narrow(Ping)
        with pytest.raises(TypeError, match="does not accept Stop"):
            await pings.tell_payload({"type": "Stop"})
        assert await bounded(pings.ask_payload({"type": "Ping", "data": {"n": 4}})) == 5
        assert [type(message) for message in server.seen] == [Ping]


def test_a_message_class_rebuilt_is_encoded_as_rebuilt() -> None:
    """The wire encoder reads a class's serializer at each encoding: a field excluded by a
    ``model_rebuild`` after the first encoding leaves the wire form too."""

    class Secret(Message):
        user: str
        token: str

    class Holder(Actor[Secret]):
        @handles(Secret)
        async def secret(self, msg: Secret) -> None:
            pass

    assert Holder.protocol.dump(Secret(user="u", token="t"))["data"]["token"] == "t"
    Secret.model_fields["token"].exclude = True
    Secret.model_rebuild(force=True)
    assert "token" not in Holder.protocol.dump(Secret(user="u", token="t"))["data"]
