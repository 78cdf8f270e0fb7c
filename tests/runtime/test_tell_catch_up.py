"""A sender that gets ahead of an actor lets it catch up: ``await ref.tell`` yields to the event
loop once each time it brings the actor's queue to a multiple of 256 messages."""

from __future__ import annotations

import asyncio

import pytest

from actorio import Actor, Message, handles
from actorio.lowlevel import CATCH_UP_DEPTH
from actorio.testing import ActorTestKit

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
    # The sender yielded (after queueing) each time the queue reached 256: the actor then handled
    # those 256 before the sender told the next one.
    depth = CATCH_UP_DEPTH
    assert actor.seen_at == [depth - 1] * depth + [2 * depth - 1] * depth + [3 * depth - 1] * depth


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
