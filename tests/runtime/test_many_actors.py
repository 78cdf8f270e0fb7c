"""10,000 actors started, messaged and stopped: nothing is left behind.

No task, future, actor or logger outlives them, and no warning is raised (warnings are errors in
this suite, and the loop runs in debug mode).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest

from actorio import Actor, Message, SupervisorStrategy, handles

COUNT = 10_000


class Add(Message[int]):
    n: int


class Note(Message):
    text: str


class Counter(Actor[Add | Note]):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.notes = 0

    @handles(Add)
    async def add(self, msg: Add) -> int:
        self.total += msg.n
        return self.total

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.notes += 1
        if msg.text == "timer":
            self.start_timer("again", Note(text="tick"), 3600)  # cancelled at stop


class Parent(Actor[Add]):
    supervisor_strategy = SupervisorStrategy(max_restarts=0)

    @handles(Add)
    async def add(self, msg: Add) -> int:
        child = await self.supervise(Counter)
        return await child.ask(msg)


def _live_timers(loop: asyncio.AbstractEventLoop) -> set[asyncio.TimerHandle]:
    """The loop's scheduled callbacks not cancelled (asyncio's own list: no public API has it)."""
    scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
    return {handle for handle in scheduled if not handle.cancelled()}


async def _futures() -> int:
    """The futures alive, once the loop has run the callbacks already due (which hold the future
    the caller awaited last)."""
    await asyncio.sleep(0)
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, asyncio.Future))


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_ten_thousand_actors_leave_nothing_behind() -> None:
    loop = asyncio.get_running_loop()
    gc.collect()
    tasks_before = set(asyncio.all_tasks())
    futures_before = await _futures()
    loggers_before = len(logging.Logger.manager.loggerDict)
    timers_before = _live_timers(loop)

    actors = [Counter() for _ in range(COUNT)]
    references = [await actor.start() for actor in actors]
    for index, reference in enumerate(references):
        await reference.tell(Note(text="timer" if index % 2 else "plain"))
        reference.tell_nowait(Add(n=index))
    replies = await asyncio.gather(*(reference.ask(Add(n=1)) for reference in references))
    assert replies == [index + 1 for index in range(COUNT)]
    assert sum(actor.notes for actor in actors) == COUNT
    assert sum(actor.is_timer_active("again") for actor in actors) == COUNT // 2
    parents = [Parent() for _ in range(100)]  # and a hundred supervisors with a child each
    for parent in parents:
        assert await (await parent.start()).ask(Add(n=2)) == 2
    for actor in actors:
        assert actor.logger is actor.logger
    everyone: list[Actor[Any]] = [*actors, *parents]
    await asyncio.wait_for(asyncio.gather(*(actor.stop() for actor in everyone)), 60)
    assert all(actor.stopped for actor in actors)
    assert not any(actor.is_timer_active("again") for actor in actors)

    watched = weakref.WeakSet(everyone)
    del actors, references, replies, parents, actor, parent, reference, everyone
    gc.collect()
    assert set(asyncio.all_tasks()) == tasks_before
    assert len(watched) == 0, "actors are still referenced after they stopped"
    assert await _futures() <= futures_before
    assert len(logging.Logger.manager.loggerDict) == loggers_before
    assert _live_timers(loop) <= timers_before  # every actor's timer was cancelled
