"""Actors across OS processes on a real nats-server: typed tell and ask, errors, invalid payloads,
senders travelling as addresses, connection errors, and a client typed against a generated stub."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from actorio import Actor, ActorRef, InvalidPayload, Message, UnhandledMessage, ask, handles
from actorio.nats import ActorNotFound, LocalServer, Node, NodeUnreachable, RemoteError, RemoteRef
from actorio.persistence import JetStreamJournal, PersistenceError, PersistenceId
from tests.nats_support.actors import Double, Fail, Greet, Greeter, Greeting, Record, Report
from tests.nats_support.processes import wait_until, worker
from tests.support import incarnation

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Inbox(Actor[Greeting]):
    """Keeps what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []

    @handles(Greeting)
    async def greeting(self, msg: Greeting) -> None:
        self.received.append(msg.text)


async def test_typed_tell_and_ask_across_processes(nats_url: str, node: Node) -> None:
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "greeter"):
        greeter = node.ref("greeter", Greeter)
        reply = await ask(greeter, Greet(name="World"))
        assert type(reply) is Greeting
        assert reply.text == "Hello World!"
        assert await greeter.ask(Double(value=21), timeout=5) == 42
        for n in range(100):
            await greeter.tell(Record(n=n))
        greeter.tell_nowait(Record(n=100))
        await greeter.tell(Record(n=101))
        # Per-sender FIFO: the ask goes after the tells, on the same subject and connection.
        assert await greeter.ask(Report()) == list(range(102))
        for n in range(102, 300):
            greeter.tell_nowait(Record(n=n))
        assert await greeter.ask(Report()) == list(range(300))  # an ask goes after queued tells


async def test_every_tell_goes_through_the_clients_publish(nats_url: str, node: Node) -> None:
    """Queued tells, told in a burst, are published through the node's client as any other
    message: a wrapper on ``node.client.publish`` (metrics, tracing, fault injection) sees each."""
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "watched"):
        greeter = node.ref("watched", Greeter)
        seen: list[str] = []
        publish = node.client.publish

        async def watched(subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
            seen.append(subject)
            await publish(subject, payload, reply, headers)

        node.client.publish = watched  # type: ignore[method-assign]
        await greeter.tell(Record(n=0))
        for n in range(1, 11):
            greeter.tell_nowait(Record(n=n))
        assert await greeter.ask(Report(), timeout=5) == list(range(11))
        assert len(seen) == 12  # 11 tells and the ask


async def test_remote_handler_error_is_raised_at_the_asker(nats_url: str, node: Node) -> None:
    # A worker in development mode: its error replies carry the traceback.
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "failing", "--debug-errors"):
        greeter = node.ref("failing", Greeter)
        with pytest.raises(RemoteError) as caught:
            await greeter.ask(Fail(reason="tuesday"))
        error = caught.value
        assert error.type_name == "ValueError"
        assert error.remote_message == "no luck: tuesday"
        assert str(error) == "ValueError: no luck: tuesday (in failing)"
        assert 'raise ValueError(f"no luck: {msg.reason}")' in error.remote_traceback
        assert await greeter.ask(Double(value=1)) == 2  # the actor carries on


async def test_invalid_payloads_never_reach_a_handler(nats_url: str, node: Node) -> None:
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "strict"):
        greeter = node.ref("strict", Greeter)
        with pytest.raises(InvalidPayload) as caught:
            await greeter.ask_payload({"type": "Record", "data": {"n": "many"}}, timeout=5)
        assert caught.value.paths == ("data.n",)
        with pytest.raises(InvalidPayload) as unknown:
            await greeter.ask_payload(b'{"type": "Nope"}', timeout=5)
        assert "unknown message type 'Nope'" in str(unknown.value)
        # Told, they are dead letters at the worker: neither handled nor fatal.
        await greeter.tell_payload({"type": "Record", "data": {"n": "many"}})
        await greeter.tell_payload(b"not json")
        await greeter.tell_payload({"type": "Record", "data": {"n": 7}})
        assert await greeter.ask(Report()) == [7]
        # Raw payloads get raw (JSON) replies.
        assert await greeter.ask_payload({"type": "Double", "data": {"value": 4}}) == 8


async def test_a_reply_is_validated_against_the_reply_type(nats_url: str, node: Node) -> None:
    class Liar(Message[int]):
        wire_name: ClassVar[str] = "Greet"  # the worker answers it with a Greeting: not an int
        name: str

    async with worker("--url", nats_url, "--mode", "greeter", "--name", "liar"):
        with pytest.raises(RemoteError) as caught:
            await node.ref("liar").ask(Liar(name="x"))
        assert caught.value.type_name == "InvalidReply"


async def test_sender_travels_as_an_address(nats_url: str, node: Node) -> None:
    inbox = Inbox()
    async with inbox, worker("--url", nats_url, "--mode", "greeter", "--name", "replier"):
        greeter = node.ref("replier", Greeter)
        await greeter.tell(Record(n=3, sender=inbox))
        await greeter.tell(Record(n=4, sender=inbox.reference))

        async def both_arrived() -> bool:
            return len(inbox.received) == 2

        await wait_until(both_arrived, 10)
        assert inbox.received == ["recorded 3", "recorded 4"]


async def test_forwarding_an_ask_to_a_remote_actor(nats_url: str, node: Node) -> None:
    class Front(Actor[Greet]):
        def __init__(self, back: ActorRef[Greet]) -> None:
            super().__init__()
            self.back = back

        @handles(Greet)
        async def greet(self, msg: Greet) -> Greeting:
            return await self.back.forward(msg)  # type: ignore[return-value]

    front_actor = Front(node.ref("back", Greeter))
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "back"), front_actor as front:
        reply = await front.ask(Greet(name="via front"), timeout=5)
        assert reply.text == "Hello via front!"


async def test_local_protocol_check_and_missing_actor(node: Node) -> None:
    greeter = node.ref("nobody-here", Greeter)
    assert isinstance(greeter, RemoteRef)
    assert isinstance(greeter, ActorRef)
    with pytest.raises(TypeError, match="does not accept Greeting"):
        await greeter.tell(Greeting(text="x"))  # type: ignore[actorio-protocol]
    with pytest.raises(ActorNotFound, match="no actor is published as 'nobody-here'"):
        await greeter.ask(Greet(name="x"), timeout=5)
    with pytest.raises(ValueError, match="invalid actor name"):
        node.ref("bad name")
    with pytest.raises(ValueError, match="invalid actor name"):
        node.ref("orders.*")


class Other(Message[int]):
    pass


class Partial(Actor[Double | Other]):
    """Accepts `Other` but has no handler for it: the default ``handle_message`` refuses it."""

    @handles(Double)
    async def double(self, msg: Double) -> int:
        return msg.value * 2

    async def handle_message(self, message: object) -> None:
        await super().handle_message(message)


async def test_unhandled_and_stopped_come_back_as_themselves(node: Node) -> None:
    partial = Partial()
    publication = await node.publish("partial", partial)
    ref = node.ref("partial", Partial)
    with pytest.raises(UnhandledMessage, match="Other is not handled by partial"):
        await ref.ask(Other())
    with pytest.raises(InvalidPayload):  # not in its protocol: refused on arrival
        await node.ref("partial").ask(Greet(name="x"))
    assert await ref.ask(Double(value=2)) == 4
    await partial.stop()

    async def left() -> bool:
        return not publication.active

    await wait_until(left, 5)
    with pytest.raises(ActorNotFound):  # it left: nobody publishes the name any more
        await ref.ask(Double(value=2), timeout=5)


async def test_unreachable_server_is_a_clear_error() -> None:
    server = LocalServer(jetstream=False)  # a free port, nothing listening
    started = asyncio.get_running_loop().time()
    with pytest.raises(NodeUnreachable, match=f"cannot connect to NATS at {server.url}"):
        await Node.connect(server.url, connect_timeout=1.0)
    assert asyncio.get_running_loop().time() - started < 5
    server.close()


async def test_a_local_server_never_stopped_does_not_outlive_its_process() -> None:
    """A program (or a test, or a pasted snippet) that starts a LocalServer and ends without
    stopping it left the nats-server running, its store directory deleted."""
    import os
    import subprocess
    import sys

    program = "from actorio.nats import LocalServer; s = LocalServer(); s.start(); print(s.process.pid)"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)

    async def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        await wait_until(gone, 10)
    finally:
        if not await gone():
            os.kill(pid, 9)


class Keyed(Greeter):
    def __init__(self, key: str) -> None:
        super().__init__()


async def test_what_needs_jetstream_says_so_on_a_server_without_it() -> None:
    # nats-py's own error names no cause ("ServiceUnavailableError ... description='None'").
    with LocalServer(jetstream=False) as server:
        async with await Node.connect(server.url) as client:
            with pytest.raises(RuntimeError, match=r"a durable mailbox needs JetStream.* -js"):
                await client.publish("jobs", Greeter(), durable=True)
            with pytest.raises(RuntimeError, match=r"an entity type .* needs JetStream.* -js"):
                await client.host(Keyed, name="keyed")
            with pytest.raises(RuntimeError, match=r"a durable entity type needs JetStream.* -js"):
                await client.host(Keyed, name="stored", durable=True)
            journal = JetStreamJournal(client.client)
            pid = PersistenceId("account", "a")
            for call in (journal.last_sequence, journal.load_snapshot, journal.load_state):
                with pytest.raises(PersistenceError, match=r"journal needs JetStream.* -js"):
                    await call(pid)
            with pytest.raises(PersistenceError, match=r"journal needs JetStream.* -js"):
                await journal.persistence_ids()


async def test_remote_and_local_references_compare(node: Node) -> None:
    greeter = Greeter()
    remote = node.ref("greeter", Greeter)
    assert remote == node.ref("greeter")
    assert remote != node.ref("other")
    assert greeter.reference != remote
    assert remote != greeter.reference
    assert len({remote, node.ref("greeter")}) == 1


async def test_a_supervised_senders_address_outlives_its_restarts_and_not_its_stop(
    nats_url: str, node: Node
) -> None:
    """A supervised child's address, travelling as a sender, reaches its new incarnation after a
    restart (it is the child's reference that travels); once the child stops for good, the
    address is forgotten and what is sent to it is a dead letter."""

    class Crash(Message):
        pass

    class Keeper(Actor[Greeting | Crash]):
        received: ClassVar[list[str]] = []

        @handles(Greeting)
        async def greeting(self, msg: Greeting) -> None:
            self.received.append(msg.text)

        @handles(Crash)
        async def crash(self, msg: Crash) -> None:
            raise RuntimeError("crash")

    class Parent(Actor[Message]):
        async def mainloop_setup(self) -> None:
            self.child = await self.supervise(Keeper)

    parent = Parent()
    async with parent, worker("--url", nats_url, "--mode", "greeter", "--name", "addressed"):

        async def started() -> bool:
            return hasattr(parent, "child")

        async def received_up_to(n: int) -> bool:
            return Keeper.received == [f"recorded {k}" for k in range(1, n + 1)]

        await wait_until(started, 10)
        child: ActorRef[Greeting | Crash] = parent.child
        greeter = node.ref("addressed", Greeter)
        await greeter.tell(Record(n=1, sender=child))
        await wait_until(lambda: received_up_to(1), 10)
        first = incarnation(child)
        await child.tell(Crash())
        await greeter.tell(Record(n=2, sender=child))  # the same address as before
        await wait_until(lambda: received_up_to(2), 10)
        assert incarnation(child) is not first
        assert len(node._addresses.exports) == 1
        await parent.stop_child(child)
        assert node._addresses.exports == {}


async def test_a_published_supervised_child_stays_published_across_its_restarts(node: Node) -> None:
    """Published through its reference, a supervised child keeps its name across a restart (each
    message goes to the incarnation running then), and leaves when it stops for good."""

    class Boom(Message):
        pass

    class Flaky(Actor[Double | Boom]):
        @handles(Double)
        async def double(self, msg: Double) -> int:
            return msg.value * 2

        @handles(Boom)
        async def boom(self, msg: Boom) -> None:
            raise RuntimeError("boom")

    class Parent(Actor[Message]):
        async def mainloop_setup(self) -> None:
            self.child = await self.supervise(Flaky)

    parent = Parent()
    async with parent:

        async def started() -> bool:
            return hasattr(parent, "child")

        await wait_until(started, 10)
        child: ActorRef[Double | Boom] = parent.child
        publication = await node.publish("flaky", child)
        remote = node.ref("flaky", Flaky)
        assert await remote.ask(Double(value=2), timeout=5) == 4
        first = incarnation(child)
        await remote.tell(Boom())
        assert await remote.ask(Double(value=3), timeout=5) == 6
        assert incarnation(child) is not first
        assert publication.active
        await parent.stop_child(child)

        async def left() -> bool:
            return not publication.active

        await wait_until(left, 10)
        with pytest.raises(ActorNotFound):
            await remote.ask(Double(value=1), timeout=5)
