"""Issue 5, orderly shutdown: the current message finishes, queued asks fail at once, children
stop in reverse start order within their stop timeout (then they are cancelled), teardown runs
once; `serve` stops a whole tree on SIGTERM, and a second signal cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import ClassVar

import pytest

from actorio import Actor, ActorStopped, ChildSpec, Message, dead_letters, handles
from actorio.testing import MockClock
from tests.support import bounded

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).resolve().parent / "serving_program.py"


class Park(Message):
    pass


class Note(Message):
    n: int


class Echo(Message[int]):
    n: int


class Member(Actor[Park | Note | Echo]):
    """Records its teardowns (name, loop time) in a shared list; parks on Park until released
    (``stuck``: never released, so only a cancel ends it)."""

    def __init__(self, name: str, log: list[tuple[str, float]]) -> None:
        super().__init__(identifier=name)
        self.log = log
        self.handled: list[str] = []
        self.parked = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False
        self.teardowns = 0

    async def mainloop_teardown(self) -> None:
        self.teardowns += 1
        self.log.append((self.identifier, asyncio.get_running_loop().time()))
        await super().mainloop_teardown()

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.handled.append("park")

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.handled.append(f"note-{msg.n}")

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        return msg.n


@pytest.mark.asyncio
async def test_stop_lets_the_current_message_finish_and_fails_queued_asks_at_once(
    mock_clock: MockClock,
) -> None:
    """stop(): the message being handled finishes; queued told messages become dead letters and
    queued asks fail with ActorStopped at once (not at their own timeout)."""
    log: list[tuple[str, float]] = []
    actor = Member("m", log)
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    await ref.tell(Note(n=1))
    asks = [asyncio.create_task(ref.ask(Echo(n=n), timeout=3600)) for n in (1, 2)]
    stopping = asyncio.create_task(actor.stop())
    await mock_clock.wait_all_tasks_blocked()  # the asks and the stop signal are queued
    actor.release.set()
    await bounded(stopping)
    assert actor.handled == ["park"]
    for ask in asks:
        with pytest.raises(ActorStopped):
            await bounded(ask, timeout=1.0)  # at once: long before their own timeout
    assert [type(letter.message) for letter in dead_letters.of("m", "stopped")] == [Note]
    assert actor.teardowns == 1


class Family(Actor[Echo]):
    """Starts members a, b (stuck in a handler) and c with register_child; 2 s to stop each."""

    child_stop_timeout: ClassVar[float | None] = 2.0

    def __init__(self, log: list[tuple[str, float]]) -> None:
        super().__init__(identifier="family")
        self.log = log
        self.members: list[Member] = []

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        for name in ("a", "b", "c"):
            member = Member(name, self.log)
            self.members.append(member)
            await self.register_child(member)
        await self.members[1].reference.tell(Park())

    async def mainloop_teardown(self) -> None:
        self.log.append((self.identifier, asyncio.get_running_loop().time()))
        await super().mainloop_teardown()

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        return msg.n


@pytest.mark.asyncio
async def test_children_stop_in_reverse_order_each_within_its_timeout_then_cancelled(
    mock_clock: MockClock,
) -> None:
    """The parent's stop: its teardown, then children newest first; a child still busy after
    child_stop_timeout is cancelled (its handler sees the cancellation, its teardown runs),
    and the next child is stopped after that."""
    log: list[tuple[str, float]] = []
    family = Family(log)
    await family.start()
    await bounded(family.reference.ask(Echo(n=0)))
    await bounded(family.members[1].parked.wait())
    await bounded(family.stop(), timeout=60.0)
    assert log == [("family", 0.0), ("c", 0.0), ("b", 2.0), ("a", 2.0)]
    assert family.members[1].cancelled
    assert all(member.stopped and member.teardowns == 1 for member in family.members)


@pytest.mark.asyncio
async def test_supervised_children_use_their_spec_stop_timeout(mock_clock: MockClock) -> None:
    """A supervised child stops within its ChildSpec's stop_timeout, then is cancelled; it is
    not restarted."""
    log: list[tuple[str, float]] = []
    made: list[Member] = []

    def make() -> Member:
        made.append(Member("stuck", log))
        return made[-1]

    class Keeper(Actor[Echo]):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            await self.supervise(ChildSpec(make, stop_timeout=1.5))

        @handles(Echo)
        async def echo(self, msg: Echo) -> int:
            return msg.n

    keeper = Keeper()
    await keeper.start()
    await bounded(keeper.reference.ask(Echo(n=0)))
    await made[0].reference.tell(Park())
    await bounded(made[0].parked.wait())
    await bounded(keeper.stop(), timeout=60.0)
    assert log == [("stuck", 1.5)]
    assert made[0].cancelled
    assert len(made) == 1


@pytest.mark.asyncio
async def test_teardown_runs_once_however_often_stop_is_called(mock_clock: MockClock) -> None:
    """Concurrent and repeated stops all return once the actor stopped; teardown ran once."""
    log: list[tuple[str, float]] = []
    actor = Member("once", log)
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    stops = [asyncio.create_task(actor.stop()) for _ in range(3)]
    await mock_clock.wait_all_tasks_blocked()  # every stop is waiting
    actor.release.set()
    await bounded(asyncio.gather(*stops))
    await bounded(actor.stop())
    assert actor.teardowns == 1
    assert [name for name, _ in log] == ["once"]


@pytest.mark.asyncio
async def test_a_stop_waiting_with_a_timeout_stays_cancellable(mock_clock: MockClock) -> None:
    """The caller of stop(timeout) can be cancelled even when the actor ends in the same loop
    iteration (Python 3.11's wait_for lost that cancellation, and a supervisor cancelled during
    a group restart never ended)."""
    log: list[tuple[str, float]] = []
    actor = Member("racy", log)
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    stopper = asyncio.create_task(actor.stop(timeout=30.0))
    await mock_clock.wait_all_tasks_blocked()
    task = actor._actor_task
    assert task is not None
    task.cancel()  # the actor ends on its next step...
    stopper.cancel()  # ...and its stopper is cancelled in the same iteration
    await bounded(asyncio.wait([stopper, task]))
    assert stopper.cancelled()
    assert actor.stopped


async def run_program(*args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROGRAM),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def program(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """serving_program.py running with ``args``; killed on the way out if it still runs."""
    process = await run_program(*args)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line: bytes = await bounded(process.stdout.readline(), timeout=30.0)
    return line.decode().strip()


@pytest.mark.asyncio
async def test_serve_stops_the_whole_tree_in_order_on_sigterm() -> None:
    """serve(): SIGTERM stops the root, which tears down and stops its children in reverse start
    order; serve returns normally and the program exits 0."""
    async with program() as process:
        assert await read_line(process) == "ready"
        process.send_signal(signal.SIGTERM)
        lines = [await read_line(process) for _ in range(4)]
        assert lines == ["teardown root", "teardown second", "teardown first", "served"]
        assert await bounded(process.wait(), timeout=30.0) == 0


@pytest.mark.asyncio
async def test_a_second_signal_cancels_a_stop_that_hangs() -> None:
    """serve(): a second signal while the tree is stopping cancels the root at once (and the
    children it had not stopped yet); serve returns and the program exits 0."""
    async with program("--hang") as process:
        assert await read_line(process) == "ready"
        process.send_signal(signal.SIGINT)
        assert [await read_line(process) for _ in range(2)] == ["teardown root", "teardown second"]
        process.send_signal(signal.SIGTERM)
        # The root is cancelled inside the hanging stop; the child not stopped yet is cancelled
        # too (its teardown runs), not left running.
        assert [await read_line(process) for _ in range(2)] == ["teardown first", "served"]
        assert await bounded(process.wait(), timeout=30.0) == 0


# -- an actor nobody references -------------------------------------------------------------------


class Recorder(Actor[Note]):
    """Starts a child of its own class (``depth`` levels), and records its teardown."""

    torn_down: ClassVar[list[str]] = []

    def __init__(self, name: str, depth: int = 0) -> None:
        super().__init__(identifier=name)
        self.depth = depth

    async def mainloop_setup(self) -> None:
        if self.depth:
            await self.register_child(Recorder(f"{self.identifier}/child", self.depth - 1))

    async def mainloop_teardown(self) -> None:
        Recorder.torn_down.append(self.identifier)

    @handles(Note)
    async def note(self, msg: Note) -> None:
        pass


def test_an_actor_nobody_references_runs_until_its_loop_shuts_down() -> None:
    """asyncio holds tasks by weak reference: an idle actor (and its child) that nobody
    references was collected while waiting, its teardown never run and its coroutine closed with
    an error. It lives until its loop shuts down, and then tears down as usual."""
    import gc

    Recorder.torn_down.clear()

    async def main() -> None:
        async def start_and_forget() -> None:
            await Recorder("forgotten", depth=1).start()

        await start_and_forget()
        await asyncio.sleep(0)  # the parent's setup starts the child
        await asyncio.sleep(0)
        gc.collect()
        assert Recorder.torn_down == []  # still running: nothing collected

    asyncio.run(main())  # cancels what still runs: the teardowns run
    assert sorted(Recorder.torn_down) == ["forgotten", "forgotten/child"]


def test_a_closed_mainloop_awaits_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """What the collector does to a task of a loop closed without cancelling it (at interpreter
    exit): close its coroutine. The mainloop then closes the actor and tells its watchers, without
    awaiting (which would raise "coroutine ignored GeneratorExit") and without logging a failure."""
    from actorio.lowlevel import task_of

    loop = asyncio.new_event_loop()
    try:
        parent = Recorder("closed", depth=1)
        loop.run_until_complete(parent.start())
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
        (child,) = parent.children
        for actor in (parent, child):
            task = task_of(actor)
            assert task is not None
            assert not task.done()
            task._log_destroy_pending = False  # type: ignore[attr-defined]  # it is never done
            coroutine = task.get_coro()
            assert isinstance(coroutine, Coroutine)
            coroutine.close()  # raised "coroutine ignored GeneratorExit" before
            assert actor.stopped
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
