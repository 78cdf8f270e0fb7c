"""What arrives from the wire is chosen by whoever sent it: a hostile client (a plain nats-py
connection) and the replies it gets, on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ConfigDict

from actorio import Actor, Backoff, InvalidPayload, Message, dead_letters, handles
from actorio.nats import Durable, Node, RemoteError
from actorio.nats._connection import GuardedClient
from actorio.nats._durable import CONSUMER, stream_name
from tests.nats.test_nats_wire_rules import MALFORMED
from tests.nats_support.actors import Double, Fail, Greet, Greeter, Greeting, Record, Report
from tests.nats_support.processes import wait_until, worker

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture
async def nodes(nats_url: str) -> AsyncIterator[tuple[Node, Node]]:
    """A node that publishes (the server side) and one that asks (the client)."""
    async with await Node.connect(nats_url) as server_side, await Node.connect(nats_url) as client:
        yield server_side, client


async def publish(node: Node, name: str, actor: Actor[Any], **options: Any) -> None:
    """``node.publish``, then one more flush: with nats-py 2.16, publish's flush can reach the
    server before the subscription does, and another connection's request sent at once may then
    find no responder."""
    await node.publish(name, actor, **options)
    await node.client.flush()


async def subscribed(nc: Client) -> None:
    """Return once the server has ``nc``'s subscriptions (two flushes: see `publish`)."""
    await nc.flush()
    await nc.flush()


async def published_greeter(node: Node, name: str) -> Greeter:
    greeter = Greeter()
    await publish(node, name, greeter)
    return greeter


async def reachable(nc: Client, name: str) -> None:
    """Wait until ``name`` answers ``nc`` (a worker's publish can return before the server has
    its subscription: see `publish`)."""

    async def answers() -> bool:
        try:
            await barrier(nc, name)
        except nats.errors.NoRespondersError:
            return False
        return True

    await wait_until(answers, 10)


async def barrier(nc: Client, name: str) -> list[int]:
    """A request from ``nc`` to ``name`` after what ``nc`` sent before: once it is answered, the
    actor's node has received (and refused or handled) all of that."""
    reply = await nc.request(f"actorio.actor.{name}", b'{"type":"Report"}', timeout=10)
    return list(json.loads(reply.data))


# -- the address rule ----------------------------------------------------------------------------


async def test_connect_refuses_a_bad_reply_prefix(nats_url: str) -> None:
    with pytest.raises(ValueError, match=r"invalid reply prefix '\$JS\.API'"):
        await Node.connect(nats_url, reply_prefixes=["$JS.API"])
    with pytest.raises(ValueError, match="not one string"):
        await Node.connect(nats_url, reply_prefixes="billing")


# -- forged reply subjects and senders ------------------------------------------------------------


async def test_a_forged_reply_subject_never_makes_the_node_act(nodes: tuple[Node, Node], raw: Client) -> None:
    """A request whose reply subject is JetStream's API (or another service's subject) is refused
    before any handler runs, as a dead letter: the stream is not deleted, nothing is published
    to the other service, and the actor keeps serving."""
    server_side, _ = nodes
    greeter = await published_greeter(server_side, "stats")
    js = raw.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    seen: list[Msg] = []

    async def other_service(msg: Msg) -> None:
        seen.append(msg)

    await raw.subscribe("other.>", cb=other_service)
    await subscribed(raw)
    subject = "actorio.actor.stats"
    await raw.publish(subject, b"", reply="$JS.API.STREAM.DELETE.ORDERS")  # an invalid request
    await raw.publish(subject, b'{"type":"Report"}', reply="$JS.API.STREAM.DELETE.ORDERS")  # a valid one
    await raw.publish(subject, b'{"type":"Record","data":{"n":1}}', reply="other.service.billing")
    await raw.publish(subject, b'{"type":"Report"}', reply="$JS.API.STREAM.PURGE.ORDERS")
    assert await barrier(raw, "stats") == []  # the Record was not handled either
    assert (await js.stream_info("ORDERS")).config.name == "ORDERS"
    await raw.flush()
    assert seen == []
    refused = dead_letters.of(reason="invalid")
    assert len(refused) == 4
    for letter in refused:
        assert letter.recipient == greeter.identifier
        assert isinstance(letter.error, InvalidPayload)
        assert letter.error.paths == ("reply",)
        assert "is refused as an address" in str(letter.error)
    assert "'$JS.API.STREAM.DELETE.ORDERS' is refused as an address" in str(refused[0].error)
    assert await server_side.ref("stats", Greeter).ask(Report(), timeout=10) == []


def raw_publish(url: str, subject: bytes, payload: bytes, reply: bytes = b"", headers: bytes = b"") -> None:
    """Publish bytes nats-py would refuse to send (a subject or a reply subject that is not UTF-8,
    a header block of any bytes) from a plain socket; return once the server has taken them (its
    PONG to a PING sent after)."""
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.recv(4096)  # INFO
        connection.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        reply_part = b" " + reply if reply else b""
        if headers:
            block = b"NATS/1.0" + headers + b"\r\n\r\n"
            sizes = b"%d %d" % (len(block), len(block) + len(payload))
            command = b"HPUB " + subject + reply_part + b" " + sizes + b"\r\n" + block + payload
        else:
            command = b"PUB " + subject + reply_part + b" %d\r\n" % len(payload) + payload
        connection.sendall(command + b"\r\nPING\r\n")
        answer = b""
        while b"PONG" not in answer:
            chunk = connection.recv(4096)
            assert chunk, answer
            assert b"-ERR" not in chunk, answer + chunk
            answer += chunk


@pytest.mark.parametrize(
    ("subject", "reply", "headers"),
    [
        (b"actorio.actor.poisoned", b"_INBOX.\xff\xfe", b""),  # nats-py decodes the reply subject
        (b"actorio.actor.poisoned", b"", b" 100 \xff\xfe"),  # and a header's status line
        (b"wildcard.\xff\xfe", b"", b""),  # and the subject, under a wildcard subscription
    ],
    ids=["reply", "status line", "subject"],
)
async def test_bytes_the_client_cannot_read_drop_one_message_not_the_connection(
    nats_url: str, nodes: tuple[Node, Node], subject: bytes, reply: bytes, headers: bytes
) -> None:
    """nats-py reads subjects, reply subjects and header status lines as strict UTF-8 in its read
    loop, which an error ends for good while the connection still looks connected. The node's
    client drops that one message (counted, logged) and goes on reading."""
    server_side, client = nodes
    await published_greeter(server_side, "poisoned")
    heard: list[str] = []
    fine = asyncio.Event()

    async def wildcard(msg: Msg) -> None:
        heard.append(msg.subject)
        fine.set()

    await server_side.client.subscribe("wildcard.*", cb=wildcard)
    await subscribed(server_side.client)
    guarded = server_side.client
    assert isinstance(guarded, GuardedClient)
    before = guarded.unreadable_count
    await asyncio.to_thread(
        raw_publish, nats_url, subject, b'{"type":"Record","data":{"n":1}}', reply, headers
    )
    # Published after the poison: once it is answered, the poison was read (same subscription).
    assert await client.ref("poisoned", Greeter).ask(Report(), timeout=10) == []
    if subject.startswith(b"wildcard"):
        await asyncio.to_thread(raw_publish, nats_url, b"wildcard.fine", b"")
        await asyncio.wait_for(fine.wait(), 10)
        assert heard == ["wildcard.fine"]
    assert guarded.unreadable_count == before + 1
    assert guarded.is_connected


async def test_an_error_of_another_operation_blames_no_message_and_reading_goes_on(
    nodes: tuple[Node, Node],
) -> None:
    """nats-py raises on the PONG of a flush that was given up (its future cancelled), after the
    PONG was read: no message is counted unreadable (nor terminated), and the node reads on."""
    server_side, client = nodes
    await published_greeter(server_side, "ponged")
    guarded = server_side.client
    assert isinstance(guarded, GuardedClient)
    before = guarded.unreadable_count
    flushing = asyncio.ensure_future(guarded.flush())
    await asyncio.sleep(0)  # its PING is sent
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)
    await guarded.flush()  # the given-up PONG comes first
    assert await client.ref("ponged", Greeter).ask(Report(), timeout=10) == []
    assert guarded.unreadable_count == before


async def test_the_guard_lets_a_connection_error_end_the_reading() -> None:
    """An ``OSError`` while the client answers the server (a PING's PONG written to a broken
    connection) is the connection's: it ends nats-py's read loop, which reconnects, rather than
    being logged and read past."""

    class Broken(GuardedClient):
        async def _process_ping(self) -> None:
            raise OSError("broken pipe")

    client = Broken(tls_wanted=False)
    with pytest.raises(OSError, match="broken pipe"):
        await client._ps.parse(b"PING\r\n")
    assert client.unreadable_count == 0


async def test_a_forged_sender_is_refused_and_the_actor_keeps_serving(nats_url: str, raw: Client) -> None:
    """In a worker process: a tell whose ``Actorio-Sender`` is another service's subject, a
    malformed one (``a b``, which stopped the actor), or JetStream's API is never handled; an ask
    with one gets `InvalidPayload` back; the worker keeps serving."""
    seen: list[Msg] = []

    async def anywhere(msg: Msg) -> None:
        seen.append(msg)

    await raw.subscribe("other.>", cb=anywhere)
    await raw.subscribe("$JS.API.STREAM.DELETE.>", cb=anywhere)
    await subscribed(raw)
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "forged"):
        await reachable(raw, "forged")
        subject = "actorio.actor.forged"
        for n, sender in enumerate(
            ["other.service.billing", "a b", "$JS.API.STREAM.DELETE.ORDERS", "", "x.>"]
        ):
            body = json.dumps({"type": "Record", "data": {"n": n}}).encode()
            await raw.publish(subject, body, headers={"Actorio-Sender": sender})
        reply = await raw.request(
            subject, b'{"type":"Record","data":{"n":9}}', timeout=10, headers={"Actorio-Sender": "a b"}
        )
        assert reply.headers is not None
        assert reply.headers["Actorio-Status"] == "error"
        error = json.loads(reply.data)
        assert error["kind"] == "invalid_payload"
        assert error["errors"][0]["path"] == "headers.Actorio-Sender"
        assert error["errors"][0]["kind"] == "refused_address"
        assert await barrier(raw, "forged") == []  # nothing was handled, and the actor still serves
        # A sender under the node's own prefix is served as before.
        await raw.publish(
            subject, b'{"type":"Record","data":{"n":7}}', headers={"Actorio-Sender": "actorio.x.y"}
        )
        assert await barrier(raw, "forged") == [7]
        await raw.flush()
        assert seen == []


async def test_a_sender_under_an_extra_reply_prefix_is_served(nats_url: str, raw: Client) -> None:
    """``reply_prefixes`` lets a node serve senders (and reply subjects) outside its own prefix."""
    seen: list[Msg] = []

    async def billing(msg: Msg) -> None:
        seen.append(msg)

    await raw.subscribe("billing.replies.>", cb=billing)
    await subscribed(raw)
    async with await Node.connect(nats_url, reply_prefixes=["billing.replies"]) as server_side:
        await published_greeter(server_side, "billed")
        body = b'{"type":"Record","data":{"n":1}}'
        await raw.publish("actorio.actor.billed", body, headers={"Actorio-Sender": "billing.replies.one"})
        await raw.publish("actorio.actor.billed", b'{"type":"Report"}', reply="billing.replies.two")
        assert await barrier(raw, "billed") == [1]

        async def both() -> bool:
            return len(seen) == 2

        await wait_until(both, 10)
        assert {msg.subject for msg in seen} == {"billing.replies.one", "billing.replies.two"}


async def test_a_stored_reply_header_is_checked_like_any_reply_subject(
    nodes: tuple[Node, Node], raw: Client
) -> None:
    """A durable ask stored with an ``Actorio-Reply`` header naming JetStream's API is a dead
    letter, terminated (not delivered again), and nothing is published there."""
    server_side, client = nodes
    greeter = Greeter()
    await publish(server_side, "kept", greeter, durable=Durable(redelivery_delay=1.0))
    js = raw.jetstream()
    await js.add_stream(name="INVOICES", subjects=["invoices.>"])
    await js.publish(
        "actorio.actor.kept",
        b'{"type":"Report"}',
        headers={"Actorio-Reply": "$JS.API.STREAM.DELETE.INVOICES"},
    )
    await js.publish("actorio.actor.kept", b'{"type":"Record","data":{"n":1}}')
    assert await client.ref("kept", Greeter, durable=True).ask(Report(), timeout=10) == [1]
    assert (await js.stream_info("INVOICES")).config.name == "INVOICES"
    [letter] = dead_letters.of(reason="invalid")
    assert isinstance(letter.error, InvalidPayload)
    assert letter.error.paths == ("reply",)
    consumer = (stream_name("actorio", "kept"), CONSUMER)

    async def settled() -> bool:  # the refused message was terminated: nothing left to deliver
        info = await js.consumer_info(*consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await wait_until(settled, 10)
    assert (await js.consumer_info(*consumer)).num_redelivered == 0
    assert len(dead_letters.of(reason="invalid")) == 1
    await greeter.stop()


class Gate(Actor[Double]):
    """Doubles, once `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Double)
    async def double(self, msg: Double) -> int:
        self.entered.set()
        await self.release.wait()
        return 2 * msg.value


async def test_a_stored_asks_reply_address_read_by_another_client_cannot_be_answered(
    nodes: tuple[Node, Node], raw: Client
) -> None:
    """A stored ask's reply address is in the stream, where a client that may read it finds it.
    Sent as the reply subject of a core ask, or stored in a durable ask of its own, it makes a
    node answer there: the asker takes neither reply (they answer no ask stored at its ask's
    sequence), and gets its own."""
    server_side, client = nodes
    gate = Gate()
    await publish(server_side, "slow", gate, durable=True)
    await publish(server_side, "doubler", Greeter())
    await publish(server_side, "stored-doubler", Greeter(), durable=True)
    asking = asyncio.ensure_future(client.ref("slow", Gate, durable=True).ask(Double(value=21), timeout=30))
    try:
        await asyncio.wait_for(gate.entered.wait(), 10)
        js = raw.jetstream()
        stored = await js.get_last_msg(stream_name("actorio", "slow"), "actorio.actor.slow")
        address = (stored.headers or {})["Actorio-Reply"]
        forged: asyncio.Queue[Msg] = asyncio.Queue()
        watch = await raw.subscribe(address, cb=forged.put)
        await subscribed(raw)
        await raw.publish("actorio.actor.doubler", b'{"type":"Double","data":{"value":1}}', reply=address)
        await js.publish(
            "actorio.actor.stored-doubler",
            b'{"type":"Double","data":{"value":5}}',
            headers={"Actorio-Reply": address},
        )
        answers = {json.loads((await asyncio.wait_for(forged.get(), 10)).data) for _ in range(2)}
        assert answers == {2, 10}  # both nodes answered there, with no sequence of the asker's
        await watch.unsubscribe()
        await client.client.flush()  # the asker's connection has both before the real reply
        assert not asking.done()
        gate.release.set()
        assert await asyncio.wait_for(asking, 10) == 42
    finally:
        asking.cancel()
        gate.release.set()
        await gate.stop()


async def test_replies_before_the_stores_acknowledgement_cannot_crowd_out_the_asks_own(
    nodes: tuple[Node, Node], raw: Client
) -> None:
    """While a stored ask's acknowledgement is late (lost, and the store retried), replies to its
    address wait for it only if they name a place in its stream: the replies a node sends there
    for other clients' core asks are dropped at once, however many, and the ask's own reply,
    come before the acknowledgement, is taken once it comes. (Eight such replies pushed it out.)"""
    server_side, client = nodes
    gate = Gate()
    await publish(server_side, "slow2", gate, durable=True)
    await publish(server_side, "doubler2", Greeter())
    streams = client._streams  # pyright: ignore[reportPrivateUsage]
    js_client = streams._js  # pyright: ignore[reportPrivateUsage]
    real_publish = js_client.publish
    let_go = asyncio.Event()
    lost: list[str] = []

    async def acknowledgement_lost_once(subject: str, payload: bytes, **options: Any) -> Any:
        ack = await real_publish(subject, payload, **options)
        if not lost and subject == "actorio.actor.slow2":
            lost.append(subject)
            await let_go.wait()
            raise nats.errors.TimeoutError  # the asker stores it again: a duplicate, its place
        return ack

    js_client.publish = acknowledgement_lost_once  # type: ignore[method-assign,assignment]
    asking = asyncio.ensure_future(client.ref("slow2", Gate, durable=True).ask(Double(value=21), timeout=30))
    try:
        await asyncio.wait_for(gate.entered.wait(), 10)  # stored and being handled; no acknowledgement
        stored = await raw.jetstream().get_last_msg(stream_name("actorio", "slow2"), "actorio.actor.slow2")
        address = (stored.headers or {})["Actorio-Reply"]
        seen: asyncio.Queue[Msg] = asyncio.Queue()
        watch = await raw.subscribe(address, cb=seen.put)
        await subscribed(raw)
        for value in range(20):
            body = json.dumps({"type": "Double", "data": {"value": value}}).encode()
            await raw.publish("actorio.actor.doubler2", body, reply=address)
        for _ in range(20):
            assert "Actorio-Answers" not in ((await asyncio.wait_for(seen.get(), 10)).headers or {})
        gate.release.set()
        genuine = await asyncio.wait_for(seen.get(), 10)
        assert json.loads(genuine.data) == 42
        assert (genuine.headers or {})["Actorio-Answers"].startswith(stream_name("actorio", "slow2"))
        await watch.unsubscribe()
        await client.client.flush()  # the asker has all 21 before its store's acknowledgement
        assert not asking.done()
        let_go.set()
        assert await asyncio.wait_for(asking, 10) == 42
        assert lost
    finally:
        let_go.set()
        asking.cancel()
        gate.release.set()
        await gate.stop()


async def test_a_failing_message_with_a_header_no_client_may_send_is_moved_and_replayed(
    nodes: tuple[Node, Node], nats_url: str
) -> None:
    """The server stores header names nats-py refuses to send (``X(y)``). A durable message that
    carries one and keeps failing is moved to the dead-letter stream all the same, without that
    header, and its letter can be replayed. (The move, each retry of it, and the replay were
    refused: the message was delivered again forever, an ordered pool stuck behind it, and a
    replay of the name's letters failed at it every time.)"""
    server_side, client = nodes
    greeter = Greeter()
    settings = Durable(
        max_deliver=2,
        redelivery_delay=1.0,
        ordered=True,
        retry_backoff=Backoff(min_delay=0.01, max_delay=0.02),
    )
    await publish(server_side, "poisoned2", greeter, durable=settings)
    body = b'{"type":"Fail","data":{"reason":"poison"}}'
    headers = b"\r\nX(y): 1\r\nX-Kept: 2"
    await asyncio.to_thread(raw_publish, nats_url, b"actorio.actor.poisoned2", body, headers=headers)
    ref = client.ref("poisoned2", Greeter, durable=True)
    await ref.tell(Record(n=1))
    assert await ref.ask(Report(), timeout=20) == [1]  # past it, in order: it was moved
    [letter] = await server_side.dead_letters("poisoned2")
    assert letter.data == body
    assert letter.headers == {"X-Kept": "2"}
    assert letter.error_type == "ValueError"
    # A letter stored straight into the dead-letter stream, with such a header, replays too.
    forged = b'{"type":"Record","data":{"n":2}}'
    await asyncio.to_thread(raw_publish, nats_url, b"actorio.dlq.poisoned2", forged, headers=headers)

    async def both_stored() -> bool:  # a plain publish: the stream stores it a little later
        return len(await server_side.dead_letters("poisoned2")) == 2

    await wait_until(both_stored, 10)
    assert await server_side.replay("poisoned2") == 2  # stored again: one fails again, and is moved

    async def moved_again() -> bool:
        letters = await server_side.dead_letters("poisoned2")
        return len(letters) == 1 and letters[0].sequence != letter.sequence

    await wait_until(moved_again, 20)
    assert await ref.ask(Report(), timeout=20) == [1, 2]
    await greeter.stop()


# -- error replies --------------------------------------------------------------------------------


async def test_error_replies_carry_the_type_and_text_only(nodes: tuple[Node, Node], raw: Client) -> None:
    """No traceback, no module, no file path; the text is cut; a 0-byte request gets a small
    reply."""
    server_side, client = nodes
    await published_greeter(server_side, "quiet")
    with pytest.raises(RemoteError) as caught:
        await client.ref("quiet", Greeter).ask(Fail(reason="tuesday"), timeout=10)
    assert str(caught.value) == "ValueError: no luck: tuesday (in quiet)"
    assert caught.value.remote_traceback == ""
    assert caught.value.module == ""
    reply = await raw.request("actorio.actor.quiet", b'{"type":"Fail","data":{"reason":"x"}}', timeout=10)
    assert b"Traceback" not in reply.data
    assert b".py" not in reply.data
    assert json.loads(reply.data) == {"kind": "error", "type": "ValueError", "message": "no luck: x"}
    with pytest.raises(RemoteError) as long:
        await client.ref("quiet", Greeter).ask(Fail(reason="y" * 100_000), timeout=10)
    assert len(long.value.remote_message) < 1100
    assert long.value.remote_message.endswith("(100009 characters)")
    empty = await raw.request("actorio.actor.quiet", b"", timeout=10)
    assert len(empty.data) < 400
    assert b"Traceback" not in empty.data


async def test_debug_errors_send_the_traceback(nats_url: str, node: Node) -> None:
    async with await Node.connect(nats_url, debug_errors=True) as server_side:
        await published_greeter(server_side, "verbose")
        with pytest.raises(RemoteError) as caught:
            await node.ref("verbose", Greeter).ask(Fail(reason="tuesday"), timeout=10)
        assert 'raise ValueError(f"no luck: {msg.reason}")' in caught.value.remote_traceback
        assert caught.value.module == "builtins"


async def test_a_bad_responder_raises_a_clear_error(node: Node, raw: Client) -> None:
    """Whatever a responder sends back, ``ask`` raises an actorio error, never a raw
    KeyError/TypeError/JSONDecodeError."""
    bodies = iter([*MALFORMED[:8], b"not json either"])

    async def liar(msg: Msg) -> None:
        body = next(bodies)
        status = "ok" if body == b"not json either" else "error"
        await raw.publish(msg.reply, body, headers={"Actorio-Status": status})

    await raw.subscribe("actorio.actor.liar", cb=liar)
    await subscribed(raw)
    ref = node.ref("liar")
    for _ in range(8):
        with pytest.raises(RemoteError, match=r"InvalidReply|Exception"):
            await ref.ask(Greet(name="x"), timeout=10)
    with pytest.raises(RemoteError, match="InvalidReply"):
        await ref.ask_payload(b'{"type":"Greet","data":{"name":"x"}}', timeout=10)


# -- Actorio-Timeout ------------------------------------------------------------------------------


async def test_an_infinite_timeout_header_does_not_keep_the_answer_waiting(
    nats_url: str, raw: Client
) -> None:
    """``Actorio-Timeout: inf`` to an actor that does not answer: the answering node gives up
    after its own ``ask_timeout``, as for no header at all."""

    class Mute(Actor[Greet]):
        @handles(Greet)
        async def greet(self, msg: Greet) -> Greeting:
            await asyncio.Event().wait()  # never answers
            raise AssertionError

    async with await Node.connect(nats_url, ask_timeout=0.3) as server_side:
        mute = Mute()
        await publish(server_side, "mute", mute)
        for value in ("inf", "nan", "1e308", "-5"):
            inbox = raw.new_inbox()
            await raw.publish(
                "actorio.actor.mute",
                b'{"type":"Greet","data":{"name":"x"}}',
                reply=inbox,
                headers={"Actorio-Timeout": value},
            )
        await raw.flush()

        async def answers_waiting() -> bool:
            return len(server_side._tasks) == 4  # pyright: ignore[reportPrivateUsage]

        async def answers_given_up() -> bool:
            return not server_side._tasks  # pyright: ignore[reportPrivateUsage]

        await wait_until(answers_waiting, 5)  # the four asks were queued, each with its answer task
        await wait_until(answers_given_up, 5)  # and each gave up after the node's ask_timeout
        await mute.stop(timeout=1)


# -- replies on the wire ------------------------------------------------------------------------


async def test_replies_are_utf8_json(nodes: tuple[Node, Node], raw: Client) -> None:
    server_side, client = nodes
    await published_greeter(server_side, "utf8")
    text = "日本語 é ✓"
    reply = await raw.request(
        "actorio.actor.utf8", json.dumps({"type": "Greet", "data": {"name": text}}).encode(), timeout=10
    )
    assert f"Hello {text}!".encode() in reply.data
    assert b"\\u" not in reply.data
    error = await raw.request(
        "actorio.actor.utf8", json.dumps({"type": "Fail", "data": {"reason": text}}).encode(), timeout=10
    )
    assert f"no luck: {text}".encode() in error.data
    assert b"\\u" not in error.data
    invalid = await raw.request(
        "actorio.actor.utf8",
        json.dumps({"type": "Greet", "data": {"name": 1, "é": text}}).encode(),
        timeout=10,
    )
    assert "é".encode() in invalid.data
    assert b"\\u" not in invalid.data
    greeting = await client.ref("utf8", Greeter).ask(Greet(name=text), timeout=10)
    assert greeting.text == f"Hello {text}!"


class Big(Message[str]):
    size: int


class Boom(Message[int]):
    size: int


class Sizes(Actor[Big | Boom | Report]):
    """Replies with as many bytes as asked, or raises an error that long."""

    @handles(Big)
    async def big(self, msg: Big) -> str:
        return "x" * msg.size

    @handles(Boom)
    async def boom(self, msg: Boom) -> int:
        raise ValueError("b" * msg.size)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return []


async def test_a_reply_too_large_for_the_server_is_an_error_at_once(
    nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    """A reply over ``max_payload`` (1 MB by default) raises `ReplyTooLarge` at the asker at once;
    the failures are logged within a limit; the actor and the connection carry on."""
    from actorio.nats import ReplyTooLarge

    server_side, client = nodes
    await publish(server_side, "sizes", Sizes())
    ref = client.ref("sizes", Sizes)
    limit = server_side.client.max_payload
    started = asyncio.get_running_loop().time()
    with pytest.raises(ReplyTooLarge) as caught:
        await ref.ask(Big(size=2_000_000), timeout=20)
    assert asyncio.get_running_loop().time() - started < 10
    assert caught.value.limit == limit
    assert caught.value.size > limit
    assert caught.value.type_name == "ReplyTooLarge"
    # Under the limit by its body, over it with its headers: refused too, and the connection lives.
    with pytest.raises(ReplyTooLarge):
        await ref.ask(Big(size=limit - 4), timeout=20)
    assert len(await ref.ask(Big(size=limit - 100), timeout=20)) == limit - 100
    with caplog.at_level("WARNING", logger="actorio.nats"):
        for _ in range(15):
            with pytest.raises(ReplyTooLarge):
                await ref.ask(Big(size=limit), timeout=20)
    warnings = [r for r in caplog.records if "larger than the server's max_payload" in r.getMessage()]
    assert 1 <= len(warnings) <= 10
    assert await ref.ask(Report(), timeout=10) == []


async def test_a_huge_error_stays_small_on_the_wire(nodes: tuple[Node, Node]) -> None:
    server_side, client = nodes
    await publish(server_side, "boom", Sizes())
    with pytest.raises(RemoteError) as caught:
        await client.ref("boom", Sizes).ask(Boom(size=5_000_000), timeout=20)
    assert caught.value.type_name == "ValueError"
    assert len(caught.value.remote_message) < 1100


class Measure(Message):
    value: float


class Reading(Message[float]):
    value: float


class Sample(Message[Measure]):
    value: float


class Tolerant(Message):
    """Declares that its NaN and infinite floats travel as JSON's extensions (``NaN``)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    value: float


class Floats(Actor[Measure | Reading | Sample | Tolerant | Report]):
    """Keeps the floats it is told; answers with the float it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    @handles(Measure, Tolerant)
    async def measure(self, msg: Measure | Tolerant) -> None:
        self.seen.append(msg.value)

    @handles(Reading)
    async def reading(self, msg: Reading) -> float:
        return msg.value

    @handles(Sample)
    async def sample(self, msg: Sample) -> Measure:
        return Measure(value=msg.value)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return [len(self.seen)]


async def test_nan_and_infinity_are_refused_before_anything_is_sent(
    nodes: tuple[Node, Node], raw: Client
) -> None:
    """JSON has no NaN: a tell carrying one raises ``ValueError`` at the call (nothing is sent);
    a reply carrying one is an error at the asker, at once; a message that declares
    ``ser_json_inf_nan="constants"`` carries them as ``NaN``/``Infinity``, read back as floats."""
    server_side, client = nodes
    floats = Floats()
    await publish(server_side, "floats", floats)
    ref = client.ref("floats", Floats)
    received: list[bytes] = []

    async def spy(msg: Msg) -> None:
        received.append(msg.data)

    await raw.subscribe("actorio.actor.floats", cb=spy)
    await subscribed(raw)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"Measure.value is .*: JSON has no NaN or infinity"):
            await ref.tell(Measure(value=bad))
        with pytest.raises(ValueError, match="JSON has no NaN"):
            ref.tell_nowait(Measure(value=bad))
        with pytest.raises(ValueError, match="JSON has no NaN"):
            await ref.ask(Reading(value=bad), timeout=10)
    await ref.tell(Measure(value=1.5))
    assert await ref.ask(Report(), timeout=10) == [1]
    # The replies: the handler's NaN is refused where it is encoded; the asker hears it at once.
    body = b'{"type":"Reading","data":{"value":NaN}}'
    reply = await raw.request("actorio.actor.floats", body, timeout=10)
    assert reply.headers is not None
    assert reply.headers["Actorio-Status"] == "error"
    assert "JSON has no NaN" in json.loads(reply.data)["message"]
    sample = await raw.request(
        "actorio.actor.floats", b'{"type":"Sample","data":{"value":Infinity}}', timeout=10
    )
    assert "Measure.value is inf" in json.loads(sample.data)["message"]
    # Declared: they travel and come back as themselves.
    await ref.tell(Tolerant(value=math.nan))
    await ref.tell(Tolerant(value=-math.inf))
    assert await ref.ask(Report(), timeout=10) == [3]
    assert floats.seen[0] == 1.5
    assert math.isnan(floats.seen[1])
    assert floats.seen[2] == -math.inf
    await raw.flush()
    assert all(b"null" not in data for data in received)


async def test_a_node_never_replies_into_a_journal(nats_url: str, node: Node, raw: Client) -> None:
    """An ask whose reply subject names a JetStream journal's subject, the entity hosts' subjects,
    a dead-letter stream's or a durable entity mailbox's is answered nowhere: a client that may
    not publish there cannot get the node to (junk replies pushed real dead letters out)."""
    await published_greeter(node, "journalled")
    captured: list[bytes] = []

    async def capture(msg: Msg) -> None:
        captured.append(msg.data)

    await raw.subscribe(f"{node.prefix}.events.>", cb=capture)
    await raw.subscribe(f"{node.prefix}.entities.>", cb=capture)
    await raw.subscribe(f"{node.prefix}.dlq.>", cb=capture)
    await raw.subscribe(f"{node.prefix}.mailbox.>", cb=capture)
    await raw.flush()
    await raw.flush()
    subject = f"{node.prefix}.actor.journalled"
    body = b'{"type": "Greet", "data": {"name": "x"}}'
    reserved = ("events.Account.alice", "entities.hosts", "dlq.jobs", "mailbox.Account.3.alice")
    for reply in (f"{node.prefix}.{space}" for space in reserved):
        await raw.publish(subject, body, reply=reply)
        await raw.publish(subject, body, headers={"Actorio-Sender": reply})
    answer = await raw.request(subject, body, timeout=10)  # served after the four above
    assert (answer.headers or {}).get("Actorio-Status") == "ok"
    await raw.flush()
    await raw.flush()
    assert captured == []
