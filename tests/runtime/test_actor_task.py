"""The mainloop task and what an idle actor holds: a task cancelled before its first step still
ends its actor, a loop's task factory is used when set, a stop while nothing is queued ends the
actor before anything told after it, and an actor never told anything holds no queue."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Coroutine, Generator
from contextlib import contextmanager
from typing import Any

import pytest

from actorio import Actor, ActorStopped, Message, dead_letters, handles
from actorio._mailbox import NO_QUEUE
from actorio._sender import BaseRef
from actorio._watch import watch
from actorio.lowlevel import mailbox_of, task_of
from actorio.testing import TestProbe
from tests.support import BOUND, bounded


class Ping(Message[int]):
    n: int = 0


class Park(Message):
    pass


class Worker(Actor[Ping | Park]):
    def __init__(self) -> None:
        super().__init__()
        self.handled: list[int] = []
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        self.handled.append(msg.n)
        return msg.n

    @handles(Park)
    async def park(self, msg: Park) -> None:
        await self.stop()  # from its own handler, with nothing queued: returns at once
        self.parked.set()
        await self.release.wait()


class Factory:
    """A task factory that keeps the tasks it makes."""

    def __init__(self) -> None:
        self.made: list[asyncio.Task[Any]] = []

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any]
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop)
        self.made.append(task)
        return task


@contextmanager
def task_factory(kind: str) -> Generator[Factory | None, None, None]:
    """The running loop with no task factory, or with a `Factory`."""
    loop = asyncio.get_running_loop()
    before = loop.get_task_factory()
    made = Factory() if kind == "task factory" else None
    loop.set_task_factory(made)
    try:
        yield made
    finally:
        loop.set_task_factory(before)


KINDS = ["no factory", "task factory"]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_loops_task_factory_makes_the_mainloop_task(kind: str) -> None:
    with task_factory(kind) as factory:
        actor = Worker()
        ref = await actor.start()
        assert await bounded(ref.ask(Ping(n=3))) == 3
        await bounded(actor.stop())
    assert actor.stopped
    assert not actor.running
    if factory is not None:
        assert task_of(actor) in factory.made


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_cancelled_before_its_first_step_ends_its_actor(kind: str) -> None:
    """Its queued ask fails, its watchers are told, and `stop` returns."""
    with task_factory(kind):
        await _cancel_before_first_step()


async def _cancel_before_first_step() -> None:
    watcher = TestProbe()
    actor = Worker()
    ref = await actor.start()
    watcher.watch(ref)
    asking = asyncio.ensure_future(ref.ask(Ping(n=1)))
    task = task_of(actor)
    assert task is not None
    task.cancel()
    with pytest.raises(ActorStopped):
        await bounded(asking)
    await bounded(watcher.expect_terminated(ref))
    await bounded(actor.stop())
    assert actor.stopped
    assert actor.handled == []
    with pytest.raises(asyncio.CancelledError):
        await bounded(actor.wait())


@pytest.mark.asyncio
async def test_a_stop_with_nothing_queued_ends_the_actor_before_what_is_told_after_it() -> None:
    """The handler calls `stop` with nothing queued; a message told afterwards is a dead letter,
    never handled, as if the stop had been queued ahead of it."""
    actor = Worker()
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    told = Ping(n=1)
    await ref.tell(told)
    actor.release.set()
    await bounded(actor.wait())
    assert actor.handled == []
    [letter] = dead_letters.of(reason="stopped")
    assert letter.message is told


@pytest.mark.asyncio
async def test_a_stop_from_outside_while_idle_ends_the_actor() -> None:
    actor = Worker()
    ref = await actor.start()
    assert await bounded(ref.ask(Ping(n=1))) == 1  # it has run, and waits for a message
    await bounded(actor.stop())
    assert actor.stopped
    assert actor.handled == [1]
    with pytest.raises(ActorStopped):
        await ref.ask(Ping(n=2))


class Idle(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return msg.n


IDLE_ACTORS = 2_000
IDLE_BYTES = 2_200
"""At most this many bytes per idle actor: its object, mailbox, reference, task, coroutine and
the future it waits on (about 1,700 on CPython 3.11). An empty deque alone is 760 bytes: an
actor that was never told anything holds none."""


@pytest.mark.asyncio
async def test_an_idle_actor_never_told_anything_holds_no_queue() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        actors = [Idle() for _ in range(IDLE_ACTORS)]
        for actor in actors:
            await actor.start()
        await asyncio.sleep(0)  # one loop iteration: their first steps were scheduled before ours
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    mailboxes = [mailbox_of(actor) for actor in actors]
    assert all(mailbox is not None and mailbox.waiting is not None for mailbox in mailboxes)
    assert all(mailbox is not None and mailbox.queue is NO_QUEUE for mailbox in mailboxes)
    for actor in actors:
        await actor.stop()
    assert used / IDLE_ACTORS < IDLE_BYTES


class Refusing(BaseRef):
    """A watcher whose reference raises when it is told its notice."""

    __slots__ = ()

    @property
    def identifier(self) -> str:
        return "refusing"

    def tell_nowait(self, message: Any, /) -> None:
        raise RuntimeError("refused")


@pytest.mark.asyncio
async def test_stop_returns_even_if_a_watchers_reference_raises() -> None:
    """The mainloop's last step (its task let go, its stoppers woken) runs even when telling a
    watcher its notice raises; the error is the actor's."""
    actor = Worker()
    ref = await actor.start()
    watch(ref, Refusing())
    await bounded(actor.stop())
    assert actor.stopped
    with pytest.raises(RuntimeError, match="refused"):
        await bounded(actor.wait())


class SlowTeardown(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.tearing_down = asyncio.Event()

    async def mainloop_teardown(self) -> None:
        self.tearing_down.set()
        await asyncio.Event().wait()  # until cancelled: the stop's timeout


@pytest.mark.asyncio
async def test_cancelling_a_running_actor_task_reports_no_error_to_the_loop() -> None:
    """The cancelled task's done callback ran after the mainloop's last step had let go of the
    actor: an ``AttributeError`` went to the loop's exception handler."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        running = Worker()
        await running.start()
        task = task_of(running)
        assert task is not None
        task.cancel()
        await asyncio.wait([task], timeout=BOUND)
        slow = SlowTeardown()
        await slow.start()
        stopping = asyncio.ensure_future(slow.stop(0.01))
        await bounded(slow.tearing_down.wait())
        await bounded(stopping)
        slow_task = task_of(slow)
        assert slow_task is not None
        assert slow_task.done()
        await asyncio.sleep(0)  # the done callbacks run
    finally:
        loop.set_exception_handler(None)
    assert reported == []
