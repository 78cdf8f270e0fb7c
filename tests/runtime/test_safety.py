"""An actor cannot freeze its process: fair scheduling of a mainloop that never runs dry, and an
ask that could never be answered (an actor asking itself) raising at once."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, ClassVar

import pytest

from actorio import Actor, DeadlockError, Message, handles
from tests.runtime.test_shutdown import program, read_line
from tests.support import bounded


class Spin(Message):
    pass


class Spinner(Actor[Spin]):
    """Tells itself ``rounds`` times, counting what another task did meanwhile."""

    mailbox_throughput: ClassVar[int] = 100

    def __init__(self, rounds: int, beats: list[int]) -> None:
        super().__init__()
        self.rounds = rounds
        self.beats = beats
        self.seen: list[int] = []
        self.done = asyncio.Event()

    @handles(Spin)
    async def spin(self, msg: Spin) -> None:
        self.seen.append(self.beats[0])
        if len(self.seen) < self.rounds:
            self.tell_nowait(Spin())
        else:
            self.done.set()


@pytest.mark.asyncio
async def test_an_actor_telling_itself_lets_other_tasks_run() -> None:
    """The mainloop yields after ``mailbox_throughput`` messages in a row: a task beside it beats
    at least once per batch (before the fix: not once until the actor ran dry)."""
    beats = [0]

    async def heartbeat() -> None:
        while True:
            beats[0] += 1
            await asyncio.sleep(0)

    spinner = Spinner(1000, beats)
    async with spinner:
        beating = asyncio.get_running_loop().create_task(heartbeat())
        spinner.tell_nowait(Spin())
        await bounded(spinner.done.wait())
        beating.cancel()
    # 1,000 messages in batches of 100: the other task ran between the batches (each beat seen
    # by some message), and never while a batch was under way (100 in a row see the same count).
    changes = sum(1 for before, after in zip(spinner.seen, spinner.seen[1:], strict=False) if after != before)
    assert changes >= 9
    runs = [spinner.seen.count(value) for value in sorted(set(spinner.seen))]
    assert max(runs) <= 100


@pytest.mark.asyncio
async def test_a_burst_is_drained_in_batches_in_order() -> None:
    """Messages queued before the actor runs are all handled, in order, across batches."""

    class Count(Message):
        n: int

    class Counter(Actor[Count]):
        mailbox_throughput: ClassVar[int] = 7

        def __init__(self) -> None:
            super().__init__()
            self.got: list[int] = []

        @handles(Count)
        async def count(self, msg: Count) -> None:
            self.got.append(msg.n)

    counter = Counter()
    for n in range(100):
        counter.tell_nowait(Count(n=n))
    async with counter as ref:
        await ref.ask(Count(n=100))
    assert counter.got == list(range(101))


def test_a_throughput_below_one_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match="mailbox_throughput"):

        class Stalled(Actor[Spin]):
            mailbox_throughput: ClassVar[int] = 0

            @handles(Spin)
            async def spin(self, msg: Spin) -> None:
                pass


@pytest.mark.asyncio
async def test_serve_stops_a_tree_whose_actor_keeps_telling_itself_on_sigint() -> None:
    """A child that never runs dry does not keep SIGINT from being handled: the tree stops in
    order and the program exits 0 (before the fix, only SIGKILL ended it)."""
    async with program("--spin") as process:
        assert await read_line(process) == "ready"
        assert await read_line(process) == "spinning"
        process.send_signal(signal.SIGINT)
        lines = [await read_line(process) for _ in range(4)]
        assert lines == ["teardown root", "teardown second", "teardown first", "served"]
        assert await bounded(process.wait(), timeout=30.0) == 0


class Ask(Message[int]):
    pass


class Outer(Message[int]):
    pass


class SelfAsker(Actor[Ask | Outer]):
    @handles(Ask)
    async def answer(self, msg: Ask) -> int:
        return 1

    @handles(Outer)
    async def outer(self, msg: Outer) -> int:
        return await self.ask(Ask()) + 1


@pytest.mark.asyncio
async def test_an_actor_asking_itself_fails_at_once_and_still_stops() -> None:
    """The ask raises DeadlockError at once (no timeout spent), the outer ask gets it, the actor
    carries on, and stop() returns."""
    actor = SelfAsker()
    async with actor as ref:
        with pytest.raises(DeadlockError, match="asked itself Ask"):
            await bounded(ref.ask(Outer()))
        assert await bounded(ref.ask(Ask())) == 1  # it carries on
    assert actor.stopped


@pytest.mark.asyncio
async def test_an_ask_from_a_task_the_actor_started_is_not_a_deadlock() -> None:
    """Only the actor's own task cannot be answered: a task it spawned may ask it."""

    class Spawner(Actor[Ask | Outer]):
        @handles(Ask)
        async def answer(self, msg: Ask) -> int:
            return 1

        @handles(Outer)
        async def outer(self, msg: Outer) -> int:
            self.pending: Any = asyncio.get_running_loop().create_task(self.reference.ask(Ask()))
            return 0

    actor = Spawner()
    async with actor as ref:
        await ref.ask(Outer())
        assert await bounded(actor.pending) == 1


class Boom(Message):
    n: int


class Resumer(Actor[Boom]):
    @handles(Boom)
    async def boom(self, msg: Boom) -> None:
        raise ValueError("x" * 10_000)


class ResumingParent(Actor[Spin]):
    @handles(Spin)
    async def spin(self, msg: Spin) -> None:
        pass

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.child = await self.supervise(Resumer, on_failure={ValueError: "resume"})


@pytest.mark.asyncio
async def test_resumed_failures_are_logged_within_a_limit(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of failing messages, each resumed, logs a bounded number of bounded lines (the
    dead letters are counted in full)."""
    from actorio import dead_letters
    from actorio._incarnation import RESUME_LOG_LIMIT, _resumes

    _resumes.reset()  # a window of its own, whatever ran before
    dead_letters.clear()
    parent = ResumingParent()
    with caplog.at_level(logging.WARNING, logger="actorio.actor"):
        async with parent as ref:
            await bounded(ref.ask(Spin()))  # its setup, and so its child, is done
            for n in range(50):
                await parent.child.tell(Boom(n=n))
            await bounded(_barrier(parent))
    lines = [r.getMessage() for r in caplog.records if "resuming after" in r.getMessage()]
    assert len(lines) == RESUME_LOG_LIMIT
    assert all(len(line) < 1_000 for line in lines)
    assert dead_letters.counts["failed"] == 50
    dead_letters.clear()


async def _barrier(parent: ResumingParent) -> None:
    from actorio.lowlevel import actor_of, barrier

    child = actor_of(parent.child)
    assert child is not None
    assert await barrier(child)
