"""A sender that gets ahead of an actor lets it catch up: ``await ref.tell`` yields to the event
loop once, before queueing, when the actor's queue holds a multiple of 256 items."""

from __future__ import annotations

import asyncio

import pytest

from actorio import Actor, Message, handles
from actorio.lowlevel import CATCH_UP_DEPTH
from actorio.testing import ActorTestKit
from tests.support import queued

pytestmark = pytest.mark.asyncio


class Note(Message):
    n: int


class Recorder(Actor):
    """Records, for each message it handles, how many its sender had told by then."""

    def __init__(self, sent: list[int]) -> None:
        super().__init__()
        self.sent = sent
        self.seen_at: list[int] = []
        self.gate: asyncio.Event | None = None

    @handles(Note)
    async def note(self, msg: Note) -> None:
        if self.gate is not None:
            await self.gate.wait()
            self.gate = None
        self.seen_at.append(self.sent[0])


async def test_a_sender_in_a_loop_lets_the_actor_catch_up_every_256_messages(actor_kit: ActorTestKit) -> None:
    sent = [0]
    actor = Recorder(sent)
    ref = await actor_kit.spawn(actor)
    for n in range(3 * CATCH_UP_DEPTH):
        await ref.tell(Note(n=n))
        sent[0] += 1
    # Each time the queue held 256 messages, the next tell yielded before queueing: the actor
    # then handled those 256 while the sender had told exactly that many.
    depth = CATCH_UP_DEPTH
    assert actor.seen_at == [depth] * depth + [2 * depth] * depth
    assert queued(ref) == depth  # the last 256: queued, not handled yet


async def test_a_stalled_actor_does_not_hold_its_sender(actor_kit: ActorTestKit) -> None:
    sent = [0]
    actor = Recorder(sent)
    actor.gate = asyncio.Event()
    ref = await actor_kit.spawn(actor)
    await ref.tell(Note(n=-1))
    for n in range(4 * CATCH_UP_DEPTH):  # the actor waits in its handler all along
        await ref.tell(Note(n=n))
        sent[0] += 1
    assert actor.seen_at == []
    assert sent[0] == 4 * CATCH_UP_DEPTH
    actor.gate.set()
    await asyncio.wait_for(ref.ask(Note(n=0)), timeout=5)
    assert len(actor.seen_at) == 4 * CATCH_UP_DEPTH + 2


async def test_tell_nowait_never_yields(actor_kit: ActorTestKit) -> None:
    sent = [0]
    actor = Recorder(sent)
    ref = await actor_kit.spawn(actor)
    for n in range(3 * CATCH_UP_DEPTH):
        ref.tell_nowait(Note(n=n))
        sent[0] += 1
    assert actor.seen_at == []
    await asyncio.wait_for(ref.ask(Note(n=0)), timeout=5)
    assert actor.seen_at == [3 * CATCH_UP_DEPTH] * (3 * CATCH_UP_DEPTH + 1)


async def test_a_tell_cancelled_at_its_yield_queued_nothing(actor_kit: ActorTestKit) -> None:
    sent = [0]
    actor = Recorder(sent)
    actor.gate = asyncio.Event()
    ref = await actor_kit.spawn(actor)
    await ref.tell(Note(n=-1))  # the actor waits in its handler from now on
    for n in range(CATCH_UP_DEPTH):
        await ref.tell(Note(n=n))
    assert queued(ref) == CATCH_UP_DEPTH
    telling = asyncio.create_task(ref.tell(Note(n=999)))
    await asyncio.sleep(0)  # the task runs up to its catch-up yield
    telling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await telling
    assert queued(ref) == CATCH_UP_DEPTH  # nothing was sent
    actor.gate.set()
    await asyncio.wait_for(ref.ask(Note(n=0)), timeout=5)
    assert len(actor.seen_at) == CATCH_UP_DEPTH + 2
