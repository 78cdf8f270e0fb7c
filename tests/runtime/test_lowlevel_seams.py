"""The seams of actorio.lowlevel for test kits and tracing: observe_sends, substitute_children."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import (
    Actor,
    ActorRef,
    ActorStopped,
    BaseRef,
    ChildSpec,
    MailboxFull,
    Message,
    Reference,
    dead_letters,
    handles,
)
from actorio.lowlevel import (
    Mailbox,
    SupervisorLike,
    mailbox_of,
    make_child,
    observe_sends,
    substitute_children,
)
from actorio.testing import ActorTestKit, TestProbe

from ..support import bounded

pytestmark = pytest.mark.asyncio


class Ping(Message[str]):
    n: int = 0


class Other(Message):
    pass


class Echo(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return f"pong {msg.n}"


class Relay(Actor[Ping]):
    """Tells each ping on to a target, from its own mainloop."""

    def __init__(self, target: ActorRef[Ping]) -> None:
        super().__init__()
        self.target = target

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        await self.target.tell(Ping(n=msg.n + 100))
        return "relayed"


Seen = list[tuple[BaseRef, Message[Any], bool]]


def recorder() -> tuple[Seen, Any]:
    seen: Seen = []

    def record(recipient: BaseRef, message: Message[Any], asked: bool) -> None:
        seen.append((recipient, message, asked))

    return seen, record


async def test_tells_and_asks_are_observed_in_order(actor_kit: ActorTestKit) -> None:
    echo = await actor_kit.spawn(Echo())
    probe = TestProbe(Ping)
    inbox = Reference()
    seen, record = recorder()
    first, second, third, fourth = Ping(n=1), Ping(n=2), Ping(n=3), Ping(n=4)
    with observe_sends(record):
        await probe.tell(first)
        assert await echo.ask(second) == "pong 2"
        inbox.tell_nowait(third)
        await probe.forward(fourth)
    assert seen == [
        (probe, first, False),
        (echo, second, True),
        (inbox, third, False),
        (probe, fourth, False),
    ]
    assert seen[1][1] is second  # as given to ask: its one-shot sender is not in it
    await probe.receive_messages(2)


async def test_nothing_is_observed_outside_the_block() -> None:
    probe = TestProbe(Ping)
    seen, record = recorder()
    with observe_sends(record):
        pass
    await probe.tell(Ping())
    assert seen == []
    await probe.expect_message(Ping)


async def test_refused_at_the_sender_is_not_observed_but_a_dead_letter_is() -> None:
    class Bounded(Echo):
        mailbox_capacity = 1

    full = Bounded()
    full.tell_nowait(Ping(n=1))
    stopped = Echo()
    await stopped.stop()
    seen, record = recorder()
    late, late_ask = Ping(n=2), Ping(n=3)
    with observe_sends(record):
        with pytest.raises(MailboxFull):
            full.tell_nowait(Ping(n=4))
        with pytest.raises(TypeError):
            full.reference.tell_nowait(Other())  # type: ignore[actorio-protocol]  # pyright: ignore[reportArgumentType]
        stopped.tell_nowait(late)
        with pytest.raises(ActorStopped):
            await stopped.ask(late_ask)
    assert seen == [(stopped.reference, late, False), (stopped.reference, late_ask, True)]
    assert [letter.message for letter in dead_letters.of(stopped.identifier)] == [late]


async def test_a_waited_tell_is_observed_once_queued(actor_kit: ActorTestKit) -> None:
    class Bounded(Echo):
        mailbox_capacity = 1

    actor = Bounded()
    actor.tell_nowait(Ping(n=1))
    seen, record = recorder()
    waited = Ping(n=2)
    with observe_sends(record):
        telling = asyncio.ensure_future(actor.tell(waited))
        await asyncio.sleep(0)
        assert seen == []  # waiting for room: not sent yet
        await actor_kit.spawn(actor)
        await bounded(telling)
    assert seen == [(actor.reference, waited, False)]


async def test_replies_are_not_sends(actor_kit: ActorTestKit) -> None:
    echo = await actor_kit.spawn(Echo())
    seen, record = recorder()
    with observe_sends(record):
        await echo.ask(Ping())
    assert [asked for _, _, asked in seen] == [True]


async def test_other_tasks_are_not_observed_and_created_tasks_are(actor_kit: ActorTestKit) -> None:
    probe = TestProbe(Ping)
    relay = await actor_kit.spawn(Relay(probe))
    release = asyncio.Event()

    async def elsewhere() -> None:  # created before the block: not in its context
        await release.wait()
        await probe.tell(Ping(n=7))

    outside = asyncio.ensure_future(elsewhere())
    seen, record = recorder()
    with observe_sends(record):
        await relay.ask(Ping(n=1))  # the relay tells the probe from its own task: not observed
        inside = asyncio.ensure_future(probe.tell(Ping(n=2)))
        release.set()
        await bounded(asyncio.gather(inside, outside))
    assert [(recipient, message.n) for recipient, message, _ in seen if isinstance(message, Ping)] == [
        (relay, 1),
        (probe, 2),
    ]
    assert {m.n for m in await probe.receive_messages(3) if isinstance(m, Ping)} == {101, 2, 7}


async def test_a_task_created_in_the_block_is_not_observed_after_it() -> None:
    probe = TestProbe(Ping)
    release = asyncio.Event()

    async def later() -> None:
        await release.wait()
        await probe.tell(Ping(n=2))

    seen, record = recorder()
    other, record_other = recorder()
    with observe_sends(record_other):  # keeps observation on: the closed block must still be silent
        with observe_sends(record):
            task = asyncio.ensure_future(later())
        release.set()
        await bounded(task)
    assert seen == []
    assert [message.n for _, message, _ in other if isinstance(message, Ping)] == [2]
    await probe.expect_message(Ping)


async def test_blocks_nest_and_each_observes() -> None:
    probe = TestProbe(Ping)
    outer, record_outer = recorder()
    inner, record_inner = recorder()
    with observe_sends(record_outer):
        await probe.tell(Ping(n=1))
        with observe_sends(record_inner):
            await probe.tell(Ping(n=2))
        await probe.tell(Ping(n=3))
    assert [message.n for _, message, _ in outer if isinstance(message, Ping)] == [1, 2, 3]
    assert [message.n for _, message, _ in inner if isinstance(message, Ping)] == [2]
    await probe.receive_messages(3)


class Parent(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        await self.register_child(Echo())
        return "spawned"


class StandIn:
    """Records what the actor does with its children; starts nothing."""

    def __init__(self) -> None:
        self.registered: list[Actor[Any]] = []

    @property
    def actors(self) -> list[Actor[Any]]:
        return list(self.registered)

    async def register(self, child: Actor[Any], /) -> ActorRef[Any]:
        self.registered.append(child)
        return child.reference

    async def supervise(self, spec: ChildSpec[Actor[Any]], /) -> ActorRef[Any]:
        return await self.register(make_child(spec))

    async def stop_child(self, mailbox: Mailbox, /) -> bool:
        return any(mailbox_of(child) is mailbox for child in self.registered)

    async def stop_all(self) -> None:
        pass

    async def abort_all(self) -> None:
        pass


async def test_substitute_children_stands_in_for_the_supervisor() -> None:
    parent = Parent()
    stand_in = StandIn()
    kept: SupervisorLike = stand_in
    with substitute_children(parent, kept) as previous:
        assert previous is None
        await parent.ping(Ping())  # the handler, called as a test kit would
        named = await parent.supervise(ChildSpec(Echo, name="named"))
        assert parent.children == stand_in.registered
        await parent.stop_child(named)
    [plain, supervised] = stand_in.registered
    assert isinstance(plain, Echo)
    assert not plain.started
    assert supervised.identifier == "named"
    assert not supervised.started
    assert parent.children == []  # given back: it had none
    with pytest.raises(ValueError, match="is not a child"):
        await parent.stop_child(named)


async def test_substitute_children_gives_back_what_it_stood_in_for() -> None:
    parent = Parent()
    child = Echo()
    await parent.register_child(child)  # a parent not started may start children
    try:
        with substitute_children(parent, StandIn()) as previous:
            assert previous is not None
            assert previous.actors == [child]
            assert parent.children == []
        assert parent.children == [child]
    finally:
        await parent.stop_child(child)
    assert child.stopped


async def test_the_children_of_a_running_actor_are_not_substituted(actor_kit: ActorTestKit) -> None:
    parent = Parent()
    await actor_kit.spawn(parent)
    with pytest.raises(RuntimeError, match="is running"), substitute_children(parent, StandIn()):
        pass
    assert await parent.ask(Ping()) == "spawned"
    [child] = parent.children
    assert child.running


async def test_make_child_names_it_and_refuses_what_is_not_an_actor() -> None:
    child = make_child(ChildSpec(Echo, name="echo-1"))
    assert isinstance(child, Echo)
    assert child.identifier == "echo-1"
    assert not child.started
    with pytest.raises(TypeError, match="must return an Actor"):
        make_child(ChildSpec(lambda: "not an actor"))  # type: ignore[arg-type,return-value]  # pyright: ignore[reportArgumentType]
