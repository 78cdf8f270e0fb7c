"""Tells queued together leave as batches (``actorio.nats._batch``), on a real nats-server: what a
spy on the subject sees, the order kept, the subjects that never get a batch, and hostile
batches refused where they enter."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from actorio import Actor, InvalidPayload, Message, dead_letters, handles
from actorio.nats import Durable, Node
from actorio.nats._batch import BATCH, MAX_BATCH, MAX_BATCH_BYTES, pieces
from tests.nats.test_nats_hostile import barrier, publish, subscribed
from tests.nats_support.actors import Greeter, Greeting, Record, Report
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def spy(nc: Client, subject: str) -> list[Msg]:
    """Every NATS message published on ``subject`` from now on (outside any queue group)."""
    seen: list[Msg] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg)

    await nc.subscribe(subject, cb=keep)
    await subscribed(nc)
    return seen


async def test_a_burst_through_a_batched_ref_leaves_as_batches_in_order(nats_url: str, raw: Client) -> None:
    """1,000 ``tell_nowait`` calls in a row through ``ref.batched()`` reach the actor in order, in
    a few NATS messages of at most `MAX_BATCH` tells each; a tell with a sender (headers) in the
    middle leaves alone, in its place."""
    seen = await spy(raw, "actorio.actor.batched")
    async with await Node.connect(nats_url) as server_side, await Node.connect(nats_url) as client:
        greeter = Greeter()
        await publish(server_side, "batched", greeter)
        plain = client.ref("batched", Greeter)
        ref = plain.batched()
        assert ref.batch
        assert ref == plain  # one address
        assert repr(ref) == "<RemoteRef batched at actorio.actor.batched, batched>"
        for n in range(500):
            ref.tell_nowait(Record(n=n))
        ref.tell_nowait(Record(n=500, sender=client.ref("nobody", Greeter)))
        for n in range(501, 1000):
            ref.tell_nowait(Record(n=n))
        assert await ref.ask(Report(), timeout=10) == list(range(1000))

        async def all_seen() -> bool:
            return len(seen) >= 6  # 500 = 2 batches, the lone one, 499 = 2 batches, the ask

        await wait_until(all_seen, 10)
    tells = [msg for msg in seen if not msg.reply]
    counts = [int(msg.headers[BATCH]) if msg.headers and BATCH in msg.headers else 1 for msg in tells]
    assert sum(counts) == 1000
    assert len(tells) == 5
    assert max(counts) == MAX_BATCH
    lone = tells[2]
    assert lone.headers is not None
    assert BATCH not in lone.headers
    assert "Actorio-Sender" in lone.headers
    for msg in tells:
        assert len(msg.data) <= MAX_BATCH_BYTES


async def test_a_plain_ref_sends_one_tell_a_message_and_a_pool_shares_a_burst(
    nats_url: str, raw: Client
) -> None:
    """Without ``batched()``, each tell is a NATS message of its own: a pool's queue group shares
    a burst among its processes, tell by tell."""
    seen = await spy(raw, "actorio.actor.shared")
    async with (
        await Node.connect(nats_url) as first,
        await Node.connect(nats_url) as second,
        await Node.connect(nats_url) as client,
    ):
        greeters = [Greeter(), Greeter()]
        await publish(first, "shared", greeters[0])
        await publish(second, "shared", greeters[1])
        ref = client.ref("shared", Greeter)
        assert not ref.batch
        for n in range(200):
            ref.tell_nowait(Record(n=n))

        async def all_handled() -> bool:
            return sum(len(greeter.recorded) for greeter in greeters) == 200

        await wait_until(all_handled, 10)
    assert all(greeter.recorded for greeter in greeters)  # both had a share (each 200 to 1 against)
    assert sorted(greeters[0].recorded + greeters[1].recorded) == list(range(200))
    assert all(not msg.headers for msg in seen)


async def test_a_durable_ref_has_no_batched_form(node: Node) -> None:
    with pytest.raises(ValueError, match="no batched form"):
        node.ref("kept", Greeter, durable=True).batched()


class Fan(Message):
    """Told: ``n`` greetings are told back to the sender, with ``tell_nowait``."""

    n: int


class Fanner(Actor[Fan]):
    @handles(Fan)
    async def fan(self, msg: Fan) -> None:
        for n in range(msg.n):
            msg.sender.tell_nowait(Greeting(text=str(n)))


class Collector(Actor[Greeting]):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    @handles(Greeting)
    async def collect(self, msg: Greeting) -> None:
        self.texts.append(msg.text)


async def test_only_a_node_address_gets_batches_as_a_sender(nats_url: str, raw: Client) -> None:
    """Told back to a sender that is an actor of another node (its address,
    ``actorio.node.<id>.<token>``, has one subscriber), a burst leaves as a batch. To any other
    sender address (another prefix, or another subject under the node's prefix: any NATS
    client may read those, one message at a time), each tell is a NATS message."""
    node_addresses = await spy(raw, "actorio.node.>")
    foreign = await spy(raw, "billing.replies.one")
    own = await spy(raw, "actorio.spy.one")
    async with (
        await Node.connect(nats_url, reply_prefixes=["billing.replies"]) as server_side,
        await Node.connect(nats_url) as client,
    ):
        await publish(server_side, "fan", Fanner())
        for address in ("billing.replies.one", "actorio.spy.one"):
            await raw.publish(
                "actorio.actor.fan", b'{"type":"Fan","data":{"n":10}}', headers={"Actorio-Sender": address}
            )
        collector = Collector()
        async with collector as collector_ref:
            await client.ref("fan", Fanner).tell(Fan(n=10, sender=collector_ref))

            async def all_arrived() -> bool:
                return len(foreign) == 10 and len(own) == 10 and len(collector.texts) == 10

            await wait_until(all_arrived, 10)
        assert collector.texts == [str(n) for n in range(10)]
    for seen in (foreign, own):
        assert [json.loads(msg.data)["data"]["text"] for msg in seen] == [str(n) for n in range(10)]
        assert all(not msg.headers for msg in seen)
    [batch] = node_addresses
    assert batch.headers == {BATCH: "10"}


def record(n: object) -> bytes:
    return json.dumps({"type": "Record", "data": {"n": n}}).encode()


async def test_an_invalid_message_in_a_batch_is_a_dead_letter_and_the_rest_are_handled(
    nats_url: str, raw: Client
) -> None:
    async with await Node.connect(nats_url) as server_side:
        greeter = await _greeter(server_side, "mixed")
        body = b"\n".join([record(1), record("two"), b"{not json", record(4)])
        await raw.publish("actorio.actor.mixed", body, headers={BATCH: "4"})
        assert await barrier(raw, "mixed") == [1, 4]
        letters = dead_letters.of(reason="invalid")
        assert [letter.message for letter in letters] == [record("two"), b"{not json"]
        assert all(letter.recipient == greeter.identifier for letter in letters)


@pytest.mark.parametrize(
    ("count", "body", "why"),
    [
        ("abc", record(1) + b"\n" + record(2), "is not a count of messages"),
        ("-2", record(1) + b"\n" + record(2), "is not a count of messages"),
        ("1", record(1), "a batch holds 2 to 256 messages, not 1"),
        (str(MAX_BATCH + 1), b"\n".join([record(1)] * (MAX_BATCH + 1)), "not 257"),
        ("99999", record(1), "is not a count of messages"),
        ("3", record(1) + b"\n" + record(2), "declares 3 messages and holds 2 lines"),
        ("256", b"\n" * 500_000, "declares 256 messages and holds 500001 lines"),
    ],
)
async def test_a_malformed_batch_is_refused_whole(
    nats_url: str, raw: Client, count: str, body: bytes, why: str
) -> None:
    """The count is checked before anything is split (a body of newlines costs no list of
    pieces); nothing of the batch is handled, it is one dead letter, and the actor serves on."""
    async with await Node.connect(nats_url) as server_side:
        greeter = await _greeter(server_side, "malformed")
        await raw.publish("actorio.actor.malformed", body, headers={BATCH: count})
        assert await barrier(raw, "malformed") == []
        [letter] = dead_letters.of(reason="invalid")
        assert letter.recipient == greeter.identifier
        assert isinstance(letter.error, InvalidPayload)
        assert letter.error.errors[0].kind == "invalid_batch"
        assert why in str(letter.error)


async def test_a_batch_with_a_sender_is_refused_whole(nats_url: str, raw: Client) -> None:
    """actorio never batches a tell with a sender; one that arrives (from another client) would
    have its sender neither checked nor given to a piece: it is refused, nothing handled."""
    async with await Node.connect(nats_url) as server_side:
        await _greeter(server_side, "sent")
        for sender in ("$JS.API.STREAM.DELETE.X", "actorio.node.x.y"):
            headers = {BATCH: "2", "Actorio-Sender": sender}
            await raw.publish("actorio.actor.sent", record(1) + b"\n" + record(2), headers=headers)
        assert await barrier(raw, "sent") == []
        letters = dead_letters.of(reason="invalid")
        assert len(letters) == 2
        for letter in letters:
            assert isinstance(letter.error, InvalidPayload)
            assert letter.error.errors[0].kind == "invalid_batch"
            assert "carries no Actorio-Sender" in str(letter.error)


async def test_a_batch_sent_as_a_request_gets_an_error_back(nats_url: str, raw: Client) -> None:
    async with await Node.connect(nats_url) as server_side:
        await _greeter(server_side, "asked")
        reply = await raw.request(
            "actorio.actor.asked", record(1) + b"\n" + record(2), timeout=10, headers={BATCH: "2"}
        )
        assert reply.headers is not None
        assert reply.headers["Actorio-Status"] == "error"
        error = json.loads(reply.data)
        assert error["kind"] == "invalid_payload"
        assert error["errors"][0]["kind"] == "invalid_batch"
        assert await barrier(raw, "asked") == []


async def _greeter(node: Node, name: str) -> Greeter:
    greeter = Greeter()
    await publish(node, name, greeter)
    return greeter


async def test_pieces_reads_a_batch_and_refuses_a_lie() -> None:
    assert pieces(b"a\nb\nc", {BATCH: "3"}) == [b"a", b"b", b"c"]
    for count in ("", "3 ", "٣", "+3", "1e3"):
        refused = pieces(b"a\nb\nc", {BATCH: count})
        assert not isinstance(refused, list)
        assert refused.kind == "invalid_batch"


async def test_a_batch_stored_by_a_durable_name_is_refused_with_the_reason(nats_url: str) -> None:
    """A durable name's stream also stores core publications to its subject: a batch that a
    batched (core) reference sent there is one stored message, refused whole, naming the fix."""
    async with await Node.connect(nats_url) as server_side, await Node.connect(nats_url) as client:
        greeter = Greeter()
        await publish(server_side, "stored", greeter, durable=Durable(redelivery_delay=1.0))
        ref = client.ref("stored", Greeter).batched()
        for n in range(3):
            ref.tell_nowait(Record(n=n))
        durable = client.ref("stored", Greeter, durable=True)
        await durable.tell(Record(n=9))

        async def refused() -> bool:
            return bool(dead_letters.of(reason="invalid")) and greeter.recorded == [9]

        await wait_until(refused, 10)
        [letter] = dead_letters.of(reason="invalid")
        assert isinstance(letter.error, InvalidPayload)
        assert letter.error.errors[0].kind == "invalid_batch"
        assert "node.ref(name, durable=True)" in str(letter.error)


async def test_a_batch_to_a_gone_sender_is_one_dead_letter_a_tell(nats_url: str, raw: Client) -> None:
    async with await Node.connect(nats_url) as node:
        subject = f"actorio.node.{node.node_id}.gone"
        await raw.publish(subject, record(1) + b"\n" + record(2), headers={BATCH: "2"})
        await raw.flush()

        async def recorded() -> bool:
            return len(dead_letters.of(reason="stopped")) == 2

        await wait_until(recorded, 10)
        assert [letter.message for letter in dead_letters.of(reason="stopped")] == [record(1), record(2)]
