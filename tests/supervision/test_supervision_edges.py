"""Supervision at its edges: the states where a child could be left neither running nor closed, a
sender waiting forever, or a tree half stopped. Each test is a scenario that once went wrong."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

import pytest

from actorio import (
    Actor,
    ActorRef,
    ActorStopped,
    Backoff,
    MailboxFull,
    Message,
    SupervisorStrategy,
    ask,
    handles,
)
from actorio.lowlevel import task_of
from actorio.testing import MockClock
from tests.support import bounded, incarnation


class Fail(Message):
    pass


class Ping(Message[str]):
    pass


class Go(Message):
    pass


class Worker(Actor[Fail | Ping | Go]):
    """Fails on Fail, answers Ping with its incarnation number."""

    made: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Worker.made += 1
        self.number = Worker.made

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise RuntimeError("boom")

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return f"pong {self.number}"

    @handles(Go)
    async def go(self, msg: Go) -> None:
        pass


class Parent(Actor[Ping]):
    """Supervises the children its test gives it; answers Ping once its setup is over."""

    def __init__(self, *children: tuple[str, Any]) -> None:
        super().__init__()
        self.specs = children
        self.refs: dict[str, ActorRef[Any]] = {}

    async def mainloop_setup(self) -> None:
        for name, factory in self.specs:
            self.refs[name] = await self.supervise(factory, name=name)

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return "ready"


async def started(parent: Parent) -> dict[str, ActorRef[Any]]:
    assert await bounded((await parent.start()).ask(Ping())) == "ready"
    return parent.refs


@pytest.mark.asyncio
async def test_stopping_a_child_whose_group_restart_waits_restarts_the_rest_of_the_group(
    mock_clock: MockClock,
) -> None:
    """one_for_all with backoff: a fails, b is stopped for the group restart, which waits; then a is
    stopped for good. b is restarted now, not left without an incarnation."""

    class Group(Parent):
        supervisor_strategy = SupervisorStrategy(
            "one_for_all", max_restarts=10, within=60, backoff=Backoff(min_delay=10, max_delay=10)
        )

    parent = Group(("a", Worker), ("b", Worker))
    refs = await started(parent)
    await refs["a"].tell(Fail())
    await mock_clock.wait_all_tasks_blocked()
    await bounded(parent.stop_child(refs["a"]))
    assert (await bounded(refs["b"].ask(Ping()))).startswith("pong")
    assert mock_clock.time() < 10  # restarted at once, not after the cancelled delay
    with pytest.raises(ActorStopped):
        await refs["a"].ask(Ping())
    await bounded(parent.stop())


@pytest.mark.asyncio
async def test_a_sender_waiting_for_room_is_let_in_when_a_restart_frees_it(mock_clock: MockClock) -> None:
    """Capacity 1, filled by a timer tick; a sender waits; the child fails and restarts, which drops
    the tick: the waiting sender gets the room."""

    class Ticking(Actor[Fail | Ping | Go]):
        mailbox_capacity = 1

        @handles(Fail)
        async def fail(self, msg: Fail) -> None:
            self.start_timer("tick", Go(), 0)
            await asyncio.sleep(1)  # the tick is queued meanwhile: the mailbox is full
            raise RuntimeError("boom")

        @handles(Go)
        async def go(self, msg: Go) -> None:
            pass

        @handles(Ping)
        async def ping(self, msg: Ping) -> str:
            return "pong"

    parent = Parent(("c", Ticking))
    ref = (await started(parent))["c"]
    await ref.tell(Fail())
    await mock_clock.wait_all_tasks_blocked()
    sender = asyncio.ensure_future(ref.tell(Go()))
    await bounded(sender)  # the restart let it in
    assert await bounded(ref.ask(Ping())) == "pong"
    await bounded(parent.stop())


@pytest.mark.asyncio
async def test_a_reference_given_out_in_init_reaches_every_incarnation() -> None:
    """What __init__ does with self.reference (register it, tell itself) works in a restarted
    incarnation as in the first: the reference is the child's, the message is handled."""
    registry: dict[str, ActorRef[Any]] = {}
    handled: list[int] = []

    class Registering(Worker):
        def __init__(self) -> None:
            super().__init__()
            registry["me"] = self.reference
            self.tell_nowait(Go())

        @handles(Go)
        async def go(self, msg: Go) -> None:
            handled.append(self.number)

    parent = Parent(("r", Registering))
    ref = (await started(parent))["r"]
    await ref.tell(Fail())
    first = handled[0]
    assert await bounded(registry["me"].ask(Ping())) == f"pong {first + 1}"
    assert registry["me"] == ref
    assert handled == [first, first + 1]
    await bounded(parent.stop())
    with pytest.raises(ActorStopped):
        await registry["me"].ask(Ping())


@pytest.mark.asyncio
async def test_a_failing_teardown_still_stops_the_children() -> None:
    """mainloop_teardown raises: the actor fails with that error, and its children (supervised or
    registered) are stopped all the same."""

    class Careless(Parent):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.registered = await self.register_child(Worker())

        async def mainloop_teardown(self) -> None:
            raise RuntimeError("teardown failed")

    parent = Careless(("s", Worker))
    refs = await started(parent)
    await bounded(parent.stop())
    with pytest.raises(RuntimeError, match="teardown failed"):
        await parent
    for ref in (refs["s"], parent.registered):
        with pytest.raises(ActorStopped):
            await ref.ask(Ping())


@pytest.mark.asyncio
async def test_a_stop_timeout_that_runs_out_still_stops_every_child(mock_clock: MockClock) -> None:
    """stop(timeout) shorter than one child's own stop: the parent is cancelled while stopping its
    children, and those not stopped yet are cancelled rather than left running."""

    class Slow(Worker):
        async def mainloop_teardown(self) -> None:
            await asyncio.sleep(60)
            await super().mainloop_teardown()

    parent = Parent(("first", Worker), ("slow", Slow))  # stopped newest first: slow, then first
    refs = await started(parent)
    await bounded(parent.stop(timeout=1))
    assert mock_clock.time() < 60
    for ref in refs.values():
        with pytest.raises(ActorStopped):
            await ref.ask(Ping())


@pytest.mark.asyncio
async def test_a_failing_handle_child_stopped_does_not_strand_the_child() -> None:
    """handle_child_stopped raises and the supervisor is resumed by its own parent: the child was
    restarted all the same (its restart does not depend on the hook)."""

    class Fussy(Parent):
        async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
            raise ValueError("bookkeeping failed")

    class Top(Parent):
        async def mainloop_setup(self) -> None:
            self.refs["mid"] = await self.supervise(
                lambda: Fussy(("c", Worker)), name="mid", on_failure={ValueError: "resume"}
            )

    top = Top()
    mid_ref = (await started(top))["mid"]
    assert await bounded(mid_ref.ask(Ping())) == "ready"
    mid = incarnation(mid_ref)
    assert isinstance(mid, Fussy)
    child = mid.refs["c"]
    await child.tell(Fail())
    assert (await bounded(child.ask(Ping()))).startswith("pong")
    assert incarnation(mid_ref) is mid  # resumed, not restarted
    await bounded(top.stop())


@pytest.mark.asyncio
async def test_a_child_cancelled_from_outside_is_restarted_not_escalated() -> None:
    """A supervised child's task cancelled by someone else (before its first step, or later) is
    an abnormal end: it is restarted, and its supervisor carries on (it is not cancelled)."""
    parent = Parent(("k", Worker))
    ref = (await started(parent))["k"]
    first = incarnation(ref)
    task = first._actor_task
    assert task is not None
    task.cancel()
    answer = await bounded(ref.ask(Ping()))
    assert incarnation(ref) is not first
    second = incarnation(ref)
    assert answer == f"pong {second.number}"  # type: ignore[attr-defined]

    fresh = await bounded(parent.supervise(Worker, name="fresh"))
    unstarted = task_of(incarnation(fresh))
    assert unstarted is not None
    unstarted.cancel()  # before its first step
    assert (await bounded(fresh.ask(Ping()))).startswith("pong")
    assert parent.running
    await bounded(parent.stop())
    assert parent._actor_task is not None
    assert not parent._actor_task.cancelled()


@pytest.mark.asyncio
async def test_an_unhandled_message_error_from_a_nested_ask_is_a_failure() -> None:
    """A handler whose own ask to another actor raises UnhandledMessage has failed (supervision
    acts); only a message this actor has no handler for is an 'unhandled' dead letter."""

    class Other(Message[str]):
        pass

    class Deaf(Actor[Other]):
        async def handle_message(self, message: Any) -> Any:
            return await super().handle_message(message)  # the default: UnhandledMessage

    deaf = Deaf()
    await deaf.start()

    class Asking(Worker):
        @handles(Go)
        async def go(self, msg: Go) -> None:
            await deaf.ask(Other())

    parent = Parent(("asking", Asking))
    ref = (await started(parent))["asking"]
    first = incarnation(ref)
    await ref.tell(Go())
    assert (await bounded(ref.ask(Ping()))).startswith("pong")
    assert incarnation(ref) is not first  # restarted: it failed
    await bounded(parent.stop())
    await bounded(deaf.stop())


@pytest.mark.asyncio
async def test_watching_from_init_gives_one_notice_across_restarts() -> None:
    """Each incarnation watches a target from __init__: when the target stops, the child is told
    once (its incarnations' references are one watcher)."""
    from actorio import Terminated
    from actorio.testing import TestProbe

    probe = TestProbe(Terminated)

    class Target(Actor[Ping]):
        @handles(Ping)
        async def ping(self, msg: Ping) -> str:
            return "target"

    target = Target()
    await target.start()

    class Watching(Worker):
        def __init__(self) -> None:
            super().__init__()
            self.watch(target)

        @handles(Terminated)
        async def terminated(self, msg: Terminated) -> None:
            await probe.tell(msg)

    parent = Parent(("w", Watching))
    ref = (await started(parent))["w"]
    await ref.tell(Fail())
    assert (await bounded(ref.ask(Ping()))).startswith("pong")  # the second incarnation runs
    await bounded(target.stop())
    notice = await probe.expect_message(Terminated)
    assert notice.ref == target.reference
    await probe.expect_no_message(within=0.05)
    await bounded(parent.stop())


@pytest.mark.asyncio
async def test_stopping_a_child_in_its_restart_teardown_closes_it(mock_clock: MockClock) -> None:
    """The child failed and is in pre_restart (its mailbox kept for a restart) when its supervisor
    stops: the restart will not come, so its mailbox closes and its watchers are told."""
    from actorio.testing import TestProbe

    class SlowRestart(Worker):
        async def pre_restart(self, error: BaseException | None) -> None:
            await asyncio.sleep(5)

    parent = Parent(("s", SlowRestart))
    ref = (await started(parent))["s"]
    probe: TestProbe[Any] = TestProbe()
    probe.watch(ref)
    await ref.tell(Fail())
    await mock_clock.wait_all_tasks_blocked()  # in pre_restart
    await bounded(parent.stop())
    await probe.expect_message(Message)  # the Terminated notice
    with pytest.raises(ActorStopped):
        await ref.ask(Ping())


@pytest.mark.asyncio
async def test_a_stop_timeout_spent_on_input_tasks_still_stops_the_children(mock_clock: MockClock) -> None:
    """The stop timeout runs out while the actor waits for its input tasks to be cancelled: its
    children are cancelled too, not left running."""

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(10)  # a slow clean-up after its cancellation

    async def ignore(task: asyncio.Task[None]) -> None:
        pass

    class WithInput(Parent):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.register_input_task(stubborn, ignore)

    parent = WithInput(("c", Worker))
    ref = (await started(parent))["c"]
    await bounded(parent.stop(timeout=1))
    assert mock_clock.time() < 10
    with pytest.raises(ActorStopped):
        await ref.ask(Ping())


@pytest.mark.asyncio
async def test_a_parent_asking_its_failed_child_with_a_timeout_goes_on_before_it(
    mock_clock: MockClock,
) -> None:
    """Restarts run in the parent's task, between its messages (as Akka's supervision runs in the
    parent's context): a parent's handler that tells its child a failing message and then asks it
    would wait for a restart only the parent can run. The ask times out as soon as the child
    ends, well before its own timeout: the handler returns, the restart runs and the queued ask
    is served by the new incarnation (its answer discarded); the next ask is answered.
    docs/concepts/supervision.md states the rule."""

    class Asking(Actor[Go | Ping]):
        answers: ClassVar[list[str]] = []

        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.child = await self.supervise(Worker, name="child")

        @handles(Go)
        async def go(self, msg: Go) -> None:
            await self.child.tell(Fail())
            try:
                self.answers.append(await self.child.ask(Ping(), timeout=5.0))
            except asyncio.TimeoutError:
                self.answers.append("timed out")

        @handles(Ping)
        async def ping(self, msg: Ping) -> str:
            return await self.child.ask(Ping(), timeout=5.0)

    Worker.made = 0
    async with Asking() as parent:
        await parent.tell(Go())
        await mock_clock.wait_all_tasks_blocked()
        assert Asking.answers == ["timed out"]  # when the child ended, not at the 5 s
        assert mock_clock.time() < 5.0
        assert await bounded(parent.ask(Ping())) == "pong 2"  # the second incarnation answers


class Probe(Message[str]):
    """Asked of `AsksItsFailingChild`: it tells its child a failing message, then asks it,
    bounded in one of four ways (``how``)."""

    how: str = "unbounded"


class AsksItsFailingChild(Actor[Probe | Ping]):
    """Asks its supervised child right after telling it a failing message."""

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.child = await self.supervise(Worker, name="child")

    @handles(Probe)
    async def probe(self, msg: Probe) -> str:
        await self.child.tell(Fail())
        asked = self.child.ask(Ping())
        try:
            if msg.how == "unbounded":
                return await asked
            if msg.how == "function":
                asked.close()
                return await ask(self.child, Ping())
            if msg.how == "timeout":
                asked.close()
                return await self.child.ask(Ping(), timeout=3600)
            return await asyncio.wait_for(asked, 3600)
        except asyncio.TimeoutError as error:
            return str(error)

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return await self.child.ask(Ping())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "how",
    [
        "unbounded",
        "function",
        "timeout",
        pytest.param(
            "wait_for",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 12), reason="wait_for runs the ask in a task of its own before 3.12"
            ),
        ),
    ],
)
async def test_a_parent_asking_its_failed_child_times_out_at_once_however_it_is_bounded(how: str) -> None:
    """The ask can only time out: without a bound it would wait for ever (and so would the
    parent's stop). It times out when the child ends, however it was bounded (the bounds here
    are an hour: the test would not end), the handler goes on, the restart runs, and the new
    incarnation answers the next ask (it also serves the queued one, whose answer is dropped)."""
    Worker.made = 0
    async with AsksItsFailingChild() as parent:
        said = await bounded(parent.ask(Probe(how=how)))
        assert said.startswith("no reply from child to Ping: it ended, and its restart runs in ")
        assert await bounded(parent.ask(Ping())) == "pong 2"


class Hold(Message):
    """Told to `Gated`: its handler waits for the gate, then fails."""


class Gated(Actor[Hold | Go | Ping]):
    """A child with room for one message, whose `Hold` fails once the test opens its gate."""

    mailbox_capacity: ClassVar[int | None] = 1
    gate: ClassVar[asyncio.Event]
    made: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Gated.made += 1

    @handles(Hold)
    async def hold(self, msg: Hold) -> None:
        await Gated.gate.wait()
        raise RuntimeError("boom")

    @handles(Go)
    async def go(self, msg: Go) -> None:
        pass

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return f"pong {Gated.made}"


class AsksItsGatedChild(Actor[Probe]):
    """Fills its child's mailbox behind a held message, then asks it: the ask waits for room."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.child: ActorRef[Hold | Go | Ping] = await self.supervise(Gated, name="gated")

    @handles(Probe)
    async def probe(self, msg: Probe) -> str:
        await self.child.tell(Hold())  # taken at once: the child waits at its gate
        await self.child.tell(Go())  # queued: the mailbox is full
        self.waiting.set()
        if msg.how == "tell":
            try:
                await self.child.tell(Go())  # waits for room, as the ask below
            except MailboxFull as error:
                return f"MailboxFull: {error}"
            return "told"
        timeout = 3600.0 if msg.how == "timeout" else None  # (an hour: the test would not end)
        try:
            return await self.child.ask(Ping(), timeout=timeout)  # room only the restart frees
        except asyncio.TimeoutError as error:
            return str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["unbounded", "timeout", "tell"])
async def test_a_parent_asking_its_ended_child_with_no_room_for_it_times_out_at_once(how: str) -> None:
    """The ask waits for room in the child's full mailbox; the child ends (what frees the room
    is its restart, which waits for this handler): the ask times out at once, not for ever. A
    tell waiting there gets MailboxFull at once, as an actor telling itself into its full
    mailbox does."""
    Gated.gate = asyncio.Event()
    Gated.made = 0
    parent = AsksItsGatedChild()
    async with parent as ref:
        asking = asyncio.create_task(ref.ask(Probe(how=how)))
        await bounded(parent.waiting.wait())
        Gated.gate.set()
        said = await bounded(asking)
        if how == "tell":
            assert said == "MailboxFull: the mailbox of gated is full (1 messages queued)"
        else:
            assert said.startswith("no reply from gated to Ping: it ended, and its restart runs in ")
        assert await bounded(parent.child.ask(Ping())) == "pong 2"


@pytest.mark.asyncio
async def test_a_parent_asking_its_failed_child_from_an_input_task_gets_the_answer() -> None:
    """The other way out the supervision page gives: the ask runs in an input task, so the
    parent's handler returns, the restart runs, and the answer comes back to the parent."""
    answered = asyncio.Event()

    class Asking(Actor[Go]):
        answers: ClassVar[list[str]] = []

        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.child = await self.supervise(Worker, name="child")

        @handles(Go)
        async def go(self, msg: Go) -> None:
            await self.child.tell(Fail())
            self.register_input_task(lambda: self.child.ask(Ping()), self.on_answer, count=1)

        async def on_answer(self, task: asyncio.Task[str]) -> None:
            self.answers.append(task.result())
            answered.set()

    Worker.made = 0
    async with Asking() as parent:
        await parent.tell(Go())
        await bounded(answered.wait())
    assert Asking.answers == ["pong 2"]


class Tick(Message):
    pass


class Ticking(Actor[Fail | Tick | Ping]):
    """Starts a periodic timer and an input task in ``__init__``, and counts what reaches this
    incarnation."""

    made: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Ticking.made += 1
        self.number = Ticking.made
        self.ticks = 0
        self.inputs = 0
        self.input_seen = asyncio.Event()
        self.ticked = asyncio.Event()
        self.start_periodic_timer("tick", Tick(), 0.001)
        self.register_input_task(self._read, self._on_read)

    async def _read(self) -> int:
        return self.number

    async def _on_read(self, task: asyncio.Task[int]) -> None:
        self.inputs += 1
        self.input_seen.set()

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise RuntimeError("boom")

    @handles(Tick)
    async def tick(self, msg: Tick) -> None:
        self.ticks += 1
        self.ticked.set()

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return f"{self.number} {self.ticks}"


@pytest.mark.asyncio
async def test_a_timer_and_an_input_task_started_in_init_reach_each_restarted_incarnation() -> None:
    """A restart makes the child anew, in its parent's task, then gives it the mailbox its first
    incarnation had: what ``__init__`` started (a timer, an input task) goes to that mailbox too,
    not to the one the new incarnation was made with, which nobody reads."""
    parent = Parent(("ticking", Ticking))
    refs = await started(parent)
    child = refs["ticking"]
    await child.tell(Fail())
    for _ in range(2):
        assert (await bounded(child.ask(Ping()))).startswith(f"{Ticking.made} ")
    second = incarnation(child)
    assert isinstance(second, Ticking)
    assert second.number == Ticking.made >= 2
    await bounded(second.input_seen.wait())
    for _ in range(3):  # ticks reach this incarnation
        second.ticked.clear()
        await bounded(second.ticked.wait())
    assert second.inputs >= 1
    assert second.is_timer_active("tick")
    await bounded(parent.stop())


class Unmakeable(Actor[Fail]):
    """The first one is made; every later one fails in ``__init__`` (a resource gone)."""

    made: ClassVar[int] = 0

    def __init__(self) -> None:
        Unmakeable.made += 1
        if Unmakeable.made > 1:
            raise OSError("cannot connect")
        super().__init__()

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise RuntimeError("boom")


class Generous(Parent):
    supervisor_strategy = SupervisorStrategy(max_restarts=2000, within=60)


@pytest.mark.asyncio
async def test_a_factory_failing_at_every_restart_ends_in_the_restart_intensity_not_a_recursion(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failed making is a restart like any other, taken as a step of the parent: 2,000 of them
    end the parent with RestartIntensityExceeded (not a RecursionError), and the "could not
    restart" errors are logged within their limit."""
    from actorio import RestartIntensityExceeded
    from actorio._supervisor import FACTORY_FAILURE_LOG_LIMIT

    Unmakeable.made = 0
    parent = Generous(("unmakeable", Unmakeable))
    refs = await started(parent)
    await refs["unmakeable"].tell(Fail())
    with pytest.raises(RestartIntensityExceeded) as raised:
        await bounded(parent.wait())
    assert isinstance(raised.value.__cause__, OSError)
    assert Unmakeable.made == 2001
    errors = [r for r in caplog.records if r.getMessage().startswith("could not restart")]
    assert len(errors) == FACTORY_FAILURE_LOG_LIMIT


class Work(Message):
    pass


class Full(Actor[Fail | Work | Ping]):
    """A child with room for two messages, which says when its incarnation fails."""

    mailbox_capacity: ClassVar[int | None] = 2
    failed: ClassVar[asyncio.Event]

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise RuntimeError("boom")

    @handles(Work)
    async def work(self, msg: Work) -> None:
        pass

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return "pong"

    async def pre_restart(self, error: BaseException | None) -> None:
        Full.failed.set()


class AsksItsFullChild(Actor[Go]):
    """Its handler makes its child fail, fills the child's mailbox, then asks it with a timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome = ""
        self.done = asyncio.Event()

    async def mainloop_setup(self) -> None:
        self.child = await self.supervise(Full, name="full")

    @handles(Go)
    async def go(self, msg: Go) -> None:
        self.child.tell_nowait(Fail())
        await Full.failed.wait()  # its restart waits for this handler: the mailbox fills up
        self.child.tell_nowait(Work())
        self.child.tell_nowait(Work())
        try:
            self.outcome = await self.child.ask(Ping(), timeout=0.5)
        except asyncio.TimeoutError:
            self.outcome = "timed out"
        self.done.set()


@pytest.mark.asyncio
async def test_a_parent_asking_its_full_restarting_child_with_a_timeout_goes_on(
    mock_clock: MockClock,
) -> None:
    """The room in the child's mailbox can only come from its restart, which runs in the parent's
    task: the ask's timeout covers the wait for room, so the handler goes on and the restart
    comes (supervision.md's advice to bound such an ask)."""
    Full.failed = asyncio.Event()
    parent = AsksItsFullChild()
    ref = await parent.start()
    await ref.tell(Go())
    await bounded(parent.done.wait())  # the clock jumps to the ask's timeout, not to the bound
    assert parent.outcome == "timed out"
    assert mock_clock.time() < 10
    assert await bounded(parent.child.ask(Ping())) == "pong"  # restarted, its mailbox read again
    await bounded(parent.stop())


@pytest.mark.parametrize("jitter", [5.0, 1.5, -0.1, float("nan")])
def test_a_backoff_jitter_outside_zero_to_one_is_a_value_error(jitter: float) -> None:
    """``jitter`` is a fraction of the delay (0.2 adds up to 20 %), checked as the delays are."""
    with pytest.raises(ValueError, match=r"Backoff needs 0 <= jitter <= 1 \(a fraction"):
        Backoff(min_delay=0.1, max_delay=1.0, jitter=jitter)
    assert Backoff(min_delay=0.1, max_delay=1.0, jitter=1.0).jitter == 1.0
