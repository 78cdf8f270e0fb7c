"""Issue 5, supervision: restartable children under a policy.

Strategies (one_for_one, one_for_all, rest_for_one), restart types (permanent, transient,
temporary), restart intensity and escalation to the grandparent, backoff with exact delays on the
controllable clock (jitter from a seeded ``random.Random``, reset after a stable period), the
per-exception decision (restart, resume, stop, escalate), the hooks around a restart, and the
reference that stays valid across restarts with its mailbox.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any, cast

import pytest

from actorio import (
    Actor,
    ActorRef,
    ActorStopped,
    Backoff,
    ChildSpec,
    Decider,
    Directive,
    EndMainLoop,
    Message,
    RestartIntensityExceeded,
    RestartType,
    SupervisorStrategy,
    Terminated,
    dead_letters,
    handles,
)
from actorio.testing import MockClock, TestProbe
from tests.support import bounded, incarnation


class Boom(Exception):
    pass


class Oops(Boom):
    """A subclass: a decider that names only `Boom` decides for it too (MRO lookup)."""


class Fatal(Exception):
    pass


ERRORS: dict[str, type[Exception]] = {"boom": Boom, "oops": Oops, "fatal": Fatal, "value": ValueError}


class Work(Message):
    n: int


class Fail(Message):
    kind: str = "boom"


class Get(Message[list[int]]):
    """The numbers this incarnation handled."""


class Which(Message[str]):
    """Which incarnation answers: ``<name><number>``."""


class Finish(Message):
    """Ends the incarnation cleanly (EndMainLoop)."""


class FailAtGate(Message):
    """Fails with ``kind`` once the journal's gate opens: children fail in the same iteration."""

    kind: str = "boom"


class Ping(Message[int]):
    pass


WorkerMessage = Work | Fail | Get | Which | Finish | FailAtGate


def what(error: BaseException | None) -> str:
    return "None" if error is None else type(error).__name__


class Journal:
    """What every incarnation of the supervised workers did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.made: Counter[str] = Counter()
        self.starts: defaultdict[str, list[float]] = defaultdict(list)
        self.gate = asyncio.Event()
        self.waiting = 0
        self.all_waiting = asyncio.Event()

    def of(self, kind: str) -> list[str]:
        """The events of one kind (``setup``, ``teardown``, ...), as the incarnation tags."""
        return [event.split(":")[0] for event in self.events if event.split(":")[1] == kind]


class Worker(Actor[WorkerMessage]):
    """A supervised child: records its hooks and what it handles in a shared journal."""

    def __init__(self, journal: Journal, name: str) -> None:
        super().__init__()
        journal.made[name] += 1
        self.journal = journal
        self.name = name
        self.tag = f"{name}{journal.made[name]}"
        self.seen: list[int] = []

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.journal.events.append(f"{self.tag}:setup")
        self.journal.starts[self.name].append(asyncio.get_running_loop().time())

    async def mainloop_teardown(self) -> None:
        self.journal.events.append(f"{self.tag}:teardown")
        await super().mainloop_teardown()

    async def pre_restart(self, error: BaseException | None) -> None:
        self.journal.events.append(f"{self.tag}:pre_restart:{what(error)}")

    async def post_restart(self, error: BaseException | None) -> None:
        self.journal.events.append(f"{self.tag}:post_restart:{what(error)}")

    @handles(Work)
    async def work(self, msg: Work) -> None:
        self.seen.append(msg.n)

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise ERRORS[msg.kind](f"{self.tag} {msg.kind}")

    @handles(Get)
    async def get(self, msg: Get) -> list[int]:
        return list(self.seen)

    @handles(Which)
    async def which(self, msg: Which) -> str:
        return self.tag

    @handles(Finish)
    async def finish(self, msg: Finish) -> None:
        raise EndMainLoop()

    @handles(FailAtGate)
    async def fail_at_gate(self, msg: FailAtGate) -> None:
        self.journal.waiting += 1
        self.journal.all_waiting.set()
        await self.journal.gate.wait()
        raise ERRORS[msg.kind](f"{self.tag} {msg.kind}")


def spec(
    journal: Journal,
    name: str,
    *,
    restart: RestartType = "permanent",
    on_failure: Decider | None = None,
    backoff: Backoff | None = None,
) -> ChildSpec[Worker]:
    return ChildSpec(
        functools.partial(Worker, journal, name),
        name=name,
        restart=restart,
        on_failure=on_failure,
        backoff=backoff,
    )


class Supervisor(Actor[Ping]):
    """Supervises its specs (in start order) from its setup; records every child that stops."""

    def __init__(self, specs: list[ChildSpec[Worker]], identifier: str = "supervisor") -> None:
        super().__init__(identifier=identifier)
        self.specs = specs
        self.refs: list[ActorRef[WorkerMessage]] = []
        self.child_stops: list[tuple[str, str]] = []
        self.child_stopped = asyncio.Event()

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        for child in self.specs:
            self.refs.append(await self.supervise(child))

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        self.child_stops.append((child.identifier, what(error)))
        self.child_stopped.set()
        await super().handle_child_stopped(child, task)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return len(self.child_stops)


def supervisor_class(strategy: SupervisorStrategy) -> type[Supervisor]:
    return cast("type[Supervisor]", type("Supervisor", (Supervisor,), {"supervisor_strategy": strategy}))


async def start(supervisor: Supervisor) -> list[ActorRef[WorkerMessage]]:
    """Start ``supervisor`` and wait until its setup supervised every child."""
    ref = await supervisor.start()
    await bounded(ref.ask(Ping()))
    return supervisor.refs


# -- the reference and the mailbox across a restart ----------------------------------------------


@pytest.mark.asyncio
async def test_reference_stays_valid_and_reaches_the_new_incarnation() -> None:
    """A failure on a told message restarts the child (one_for_one, default); the reference given
    out before the restart reaches the new incarnation, with the same identifier."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a")])
    [ref] = await start(supervisor)
    first = supervisor.children[0]
    assert await bounded(ref.ask(Which())) == "a1"
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a2"
    assert first.stopped
    assert supervisor.children[0] is not first
    assert supervisor.children[0].reference == ref
    assert ref.identifier == "a"
    assert supervisor.children[0].identifier == "a"
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_failed_message_is_a_dead_letter_with_its_error_and_is_not_retried() -> None:
    """The message whose handling failed goes to dead letters (reason ``failed``) with the error,
    and the new incarnation does not handle it again."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a")])
    [ref] = await start(supervisor)
    failing = Fail()
    await ref.tell(failing)
    assert await bounded(ref.ask(Which())) == "a2"
    [letter] = dead_letters.of("a", "failed")
    assert letter.message is failing
    assert isinstance(letter.error, Boom)
    assert str(letter.error) == "a1 boom"
    assert journal.made["a"] == 2  # not failed again: no third incarnation
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_messages_queued_behind_the_failure_and_told_during_backoff_arrive_in_order(
    mock_clock: MockClock,
) -> None:
    """The mailbox survives the restart: messages queued behind the failed one, then messages
    told while the child waits for its backoff delay, are handled by the new incarnation in
    the order they were told."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", backoff=Backoff(min_delay=5.0, max_delay=5.0))])
    [ref] = await start(supervisor)
    ref.tell_nowait(Work(n=1))
    ref.tell_nowait(Fail())
    ref.tell_nowait(Work(n=2))
    ref.tell_nowait(Work(n=3))
    await bounded(supervisor.child_stopped.wait())  # a1 is over; a2 comes in 5 s
    assert supervisor.child_stops == [("a", "Boom")]
    assert journal.made["a"] == 1
    ref.tell_nowait(Work(n=4))
    await ref.tell(Work(n=5))
    assert await bounded(ref.ask(Get()), timeout=60.0) == [2, 3, 4, 5]
    assert journal.starts["a"] == [0.0, 5.0]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_asks_queued_across_a_restart_are_answered_by_the_new_incarnation() -> None:
    """Asks queued behind the failing message are not failed by the restart: the new
    incarnation answers them."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a")])
    [ref] = await start(supervisor)
    ref.tell_nowait(Fail())
    answers = await bounded(asyncio.gather(ref.ask(Which()), ref.ask(Which())))
    assert list(answers) == ["a2", "a2"]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_hooks_run_in_order_around_a_restart() -> None:
    """Around a restart: pre_restart then mainloop_teardown on the old incarnation, then
    mainloop_setup then post_restart on the new one, both hooks given the error."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a2"
    assert journal.events == [
        "a1:setup",
        "a1:pre_restart:Boom",
        "a1:teardown",
        "a2:setup",
        "a2:post_restart:Boom",
    ]
    await bounded(supervisor.stop())
    assert journal.events[-1] == "a2:teardown"  # a stop for good: no pre_restart


@pytest.mark.asyncio
async def test_handle_child_stopped_is_still_called_for_every_incarnation() -> None:
    """The original `handle_child_stopped` runs for every incarnation that ends, with its task
    (the error), before supervision acts."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail(kind="value"))
    assert await bounded(ref.ask(Which())) == "a2"
    await ref.tell(Finish())
    assert await bounded(ref.ask(Which())) == "a3"
    assert supervisor.child_stops == [("a", "ValueError"), ("a", "None")]
    await bounded(supervisor.stop())


# -- strategies -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_for_one_restarts_only_the_failed_child() -> None:
    """one_for_one: only the child that failed restarts; its siblings keep their state."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a"), spec(journal, "b"), spec(journal, "c")])
    a, b, c = await start(supervisor)
    await a.tell(Work(n=1))
    await c.tell(Work(n=3))
    await b.tell(Fail())
    assert await bounded(b.ask(Which())) == "b2"
    assert await bounded(a.ask(Get())) == [1]
    assert await bounded(c.ask(Get())) == [3]
    assert await bounded(a.ask(Which())) == "a1"
    assert await bounded(c.ask(Which())) == "c1"
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_one_for_all_restarts_every_child_stopping_them_in_reverse_order() -> None:
    """one_for_all: one child fails, the others are stopped (newest first, their pre_restart given
    the sibling's error), then all restart in start order."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy("one_for_all"))
    supervisor = cls([spec(journal, "a"), spec(journal, "b"), spec(journal, "c")])
    a, b, c = await start(supervisor)
    await a.tell(Work(n=1))
    await b.tell(Fail())
    # b's mailbox is served once the group restart is done (a and c may answer asks until their
    # stop arrives).
    assert await bounded(b.ask(Which())) == "b2"
    assert await bounded(c.ask(Which())) == "c2"
    assert await bounded(a.ask(Which())) == "a2"
    assert await bounded(a.ask(Get())) == []
    assert journal.events[3:] == [
        "b1:pre_restart:Boom",
        "b1:teardown",
        "c1:pre_restart:Boom",
        "c1:teardown",
        "a1:pre_restart:Boom",
        "a1:teardown",
        "a2:setup",
        "a2:post_restart:Boom",
        "b2:setup",
        "b2:post_restart:Boom",
        "c2:setup",
        "c2:post_restart:Boom",
    ]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    """rest_for_one: the failed child and the children started after it restart; those started
    before it keep running."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy("rest_for_one"))
    supervisor = cls([spec(journal, "a"), spec(journal, "b"), spec(journal, "c")])
    a, b, c = await start(supervisor)
    await a.tell(Work(n=1))
    await b.tell(Fail())
    assert await bounded(b.ask(Which())) == "b2"
    assert await bounded(c.ask(Which())) == "c2"
    assert await bounded(a.ask(Which())) == "a1"
    assert await bounded(a.ask(Get())) == [1]
    assert journal.of("setup") == ["a1", "b1", "c1", "b2", "c2"]
    assert journal.of("teardown") == ["b1", "c1"]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_temporary_sibling_under_one_for_all_is_stopped_for_good() -> None:
    """one_for_all with a temporary sibling: the group restart stops it for good (its watchers
    get Terminated, what is told to it is a dead letter); the others restart."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy("one_for_all"))
    supervisor = cls([spec(journal, "a"), spec(journal, "b", restart="temporary"), spec(journal, "c")])
    a, b, c = await start(supervisor)
    probe = TestProbe()
    probe.watch(b)
    await a.tell(Fail())
    assert await bounded(a.ask(Which())) == "a2"
    assert await bounded(c.ask(Which())) == "c2"
    notice = await probe.expect_message(Terminated)
    assert notice.ref == b
    assert journal.made["b"] == 1
    await b.tell(Work(n=1))
    assert [type(letter.message) for letter in dead_letters.of("b", "stopped")] == [Work]
    assert [child.identifier for child in supervisor.children] == ["a", "c"]
    await bounded(supervisor.stop())


# -- restart types -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_permanent_child_restarts_even_after_a_clean_end() -> None:
    """permanent: restarted after a failure and after a clean end (EndMainLoop) alike."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", restart="permanent")])
    [ref] = await start(supervisor)
    await ref.tell(Finish())
    assert await bounded(ref.ask(Which())) == "a2"
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a3"
    assert journal.of("post_restart") == ["a2", "a3"]
    assert "a2:post_restart:None" in journal.events
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_transient_child_restarts_after_a_failure_only() -> None:
    """transient: restarted after a failure; a clean end stops it for good (Terminated without a
    reason) and the supervisor carries on."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", restart="transient")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a2"
    probe = TestProbe()
    probe.watch(ref)
    await ref.tell(Finish())
    notice = await probe.expect_message(Terminated)
    assert notice.reason is None
    assert journal.made["a"] == 2
    assert await bounded(supervisor.reference.ask(Ping())) == 2
    assert supervisor.children == []
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_temporary_child_is_never_restarted() -> None:
    """temporary: a failure stops it for good (Terminated with the error); the supervisor
    carries on, and what is told to it afterwards is a dead letter."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", restart="temporary")])
    [ref] = await start(supervisor)
    probe = TestProbe()
    probe.watch(ref)
    await ref.tell(Fail())
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, Boom)
    assert journal.made["a"] == 1
    assert supervisor.running
    assert await bounded(supervisor.reference.ask(Ping())) == 1
    await ref.tell(Work(n=1))
    assert len(dead_letters.of("a", "stopped")) == 1
    await bounded(supervisor.stop())


# -- restart intensity ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_restarts_within_the_intensity_are_allowed_and_old_ones_expire(mock_clock: MockClock) -> None:
    """max_restarts within `within` seconds: that many restarts in the window are fine, and a
    restart older than the window no longer counts."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(max_restarts=2, within=10.0))
    supervisor = cls([spec(journal, "a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a3"
    await asyncio.sleep(10.0)  # virtual time: both restarts leave the window
    await ref.tell(Fail())
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a5"
    assert supervisor.running
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_intensity_exceeded_stops_children_in_reverse_order_and_fails_the_supervisor() -> None:
    """One restart more than the intensity allows: the supervisor stops its other children,
    newest first, and fails with RestartIntensityExceeded (caused by the child's error); the
    failed child's reference closes too."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(max_restarts=1, within=60.0))
    supervisor = cls([spec(journal, "a"), spec(journal, "b"), spec(journal, "c")])
    a, b, c = await start(supervisor)
    probe = TestProbe()
    probe.watch(b)
    await b.tell(Fail())
    assert await bounded(b.ask(Which())) == "b2"
    await b.tell(Fail(kind="value"))
    queued = asyncio.ensure_future(b.ask(Which()))  # behind the failure: the restart never comes
    error = await probe.expect_terminated(supervisor, error=RestartIntensityExceeded)
    assert isinstance(error.__cause__, ValueError)
    with pytest.raises(ActorStopped) as stopped:
        await bounded(queued)
    assert isinstance(stopped.value.reason, ValueError)  # why b ended, for the ask it never saw
    assert (error.max_restarts, error.within) == (1, 60.0)
    assert journal.of("teardown")[-2:] == ["c1", "a1"]
    assert journal.made["b"] == 2
    assert all(child.stopped for child in (incarnation(a), incarnation(b), incarnation(c)))
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, ValueError)


class GrandParent(Actor[Ping]):
    """Supervises a Supervisor (restarted once after any failure); records its children's ends."""

    def __init__(self, make: Callable[[], Supervisor]) -> None:
        super().__init__(identifier="grandparent")
        self.make = make
        self.child_stops: list[tuple[str, str]] = []
        self.ref: ActorRef[Ping] | None = None

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.ref = await self.supervise(self.make)

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        self.child_stops.append((child.identifier, what(error)))
        await super().handle_child_stopped(child, task)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return len(self.child_stops)


@pytest.mark.asyncio
async def test_intensity_exceeded_escalates_to_the_grandparent_which_decides() -> None:
    """The supervisor that gives up fails, so its own parent decides: here the grandparent
    restarts it, and the new supervisor starts fresh children."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(max_restarts=0, within=60.0))
    supervisors: list[Supervisor] = []

    def make() -> Supervisor:
        supervisors.append(cls([spec(journal, "a")]))
        return supervisors[-1]

    grandparent = GrandParent(make)
    await grandparent.start()
    await bounded(grandparent.reference.ask(Ping()))
    assert grandparent.ref is not None
    sup_ref = grandparent.ref
    await bounded(sup_ref.ask(Ping()))
    await supervisors[0].refs[0].tell(Fail())  # a first restart is already too many
    # The first supervisor gives up: only then is the Ping queued, else the first one may answer it.
    with pytest.raises(RestartIntensityExceeded):
        await bounded(supervisors[0].wait())
    await bounded(sup_ref.ask(Ping()))  # answered by the second supervisor, after its setup
    assert grandparent.child_stops == [("supervisor", "RestartIntensityExceeded")]
    assert len(supervisors) == 2
    assert supervisors[0].stopped
    new_ref = supervisors[1].refs[0]
    assert await bounded(new_ref.ask(Which())) == "a2"
    assert new_ref != supervisors[0].refs[0]  # the old supervisor's children are gone
    # a1 ended expecting a restart (pre_restart ran), then its supervisor gave up.
    assert journal.events[:4] == ["a1:setup", "a1:pre_restart:Boom", "a1:teardown", "a2:setup"]
    await bounded(grandparent.stop())
    assert supervisors[1].stopped


# -- backoff -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_backoff_delays_grow_exponentially_up_to_the_cap(mock_clock: MockClock) -> None:
    """Backoff: the n-th restart in a row waits min_delay * factor**n, capped at max_delay;
    exact virtual times at each incarnation's start."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(max_restarts=100, within=1000.0))
    supervisor = cls([spec(journal, "a", backoff=Backoff(min_delay=1.0, max_delay=10.0, factor=2.0))])
    [ref] = await start(supervisor)
    for _ in range(6):
        await ref.tell(Fail())
        await bounded(ref.ask(Which()), timeout=30.0)
    assert journal.starts["a"] == [0.0, 1.0, 3.0, 7.0, 15.0, 25.0, 35.0]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_backoff_jitter_is_drawn_from_the_given_rng(mock_clock: MockClock) -> None:
    """Backoff jitter: each delay is stretched by jitter * rng.random(); with a seeded
    random.Random the delays are reproducible, exactly."""
    journal = Journal()
    backoff = Backoff(min_delay=1.0, max_delay=8.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    cls = supervisor_class(SupervisorStrategy(max_restarts=100, within=1000.0))
    supervisor = cls([spec(journal, "a", backoff=backoff)])
    [ref] = await start(supervisor)
    for _ in range(5):
        await ref.tell(Fail())
        await bounded(ref.ask(Which()), timeout=60.0)
    rng = random.Random(7)
    delays = [min(8.0, 2.0**n) * (1 + 0.5 * rng.random()) for n in range(5)]
    expected = [0.0]
    for delay in delays:
        expected.append(expected[-1] + delay)
    assert journal.starts["a"] == expected
    assert all(delay > min(8.0, 2.0**n) for n, delay in enumerate(delays))  # stretched, not shifted
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_backoff_resets_after_a_stable_period(mock_clock: MockClock) -> None:
    """Backoff reset_after: an incarnation that ran that long without failing starts the delays
    again from min_delay."""
    journal = Journal()
    backoff = Backoff(min_delay=1.0, max_delay=100.0, factor=2.0, reset_after=10.0)
    cls = supervisor_class(SupervisorStrategy(max_restarts=100, within=1000.0))
    supervisor = cls([spec(journal, "a", backoff=backoff)])
    [ref] = await start(supervisor)
    for _ in range(2):
        await ref.tell(Fail())
        await bounded(ref.ask(Which()), timeout=30.0)
    assert journal.starts["a"] == [0.0, 1.0, 3.0]
    await asyncio.sleep(9.0)  # virtual: a3 runs 9 s, not yet stable
    await ref.tell(Fail())
    await bounded(ref.ask(Which()), timeout=30.0)
    assert journal.starts["a"][-1] == 12.0 + 4.0
    await asyncio.sleep(10.0)  # a4 runs 10 s: stable
    await ref.tell(Fail())
    await bounded(ref.ask(Which()), timeout=30.0)
    assert journal.starts["a"][-1] == 26.0 + 1.0
    await ref.tell(Fail())
    await bounded(ref.ask(Which()), timeout=30.0)
    assert journal.starts["a"][-1] == 27.0 + 2.0
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_strategy_backoff_is_the_default_for_children_without_their_own(mock_clock: MockClock) -> None:
    """The supervisor strategy's backoff applies to a child whose spec has none."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(backoff=Backoff(min_delay=3.0, max_delay=3.0)))
    supervisor = cls([spec(journal, "a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which()), timeout=60.0) == "a2"
    assert journal.starts["a"] == [0.0, 3.0]
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_stop_child_during_backoff_cancels_the_restart(mock_clock: MockClock) -> None:
    """stop_child while a restart waits for its delay: no new incarnation comes, the address
    closes (queued messages are dead letters, watchers get Terminated with the last error)."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", backoff=Backoff(min_delay=5.0, max_delay=5.0))])
    [ref] = await start(supervisor)
    probe = TestProbe()
    probe.watch(ref)
    await ref.tell(Fail())
    await bounded(supervisor.child_stopped.wait())
    await ref.tell(Work(n=1))
    await bounded(supervisor.stop_child(ref))
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, Boom)
    await asyncio.sleep(10.0)
    assert journal.made["a"] == 1
    assert [type(letter.message) for letter in dead_letters.of("a", "stopped")] == [Work]
    await bounded(supervisor.stop())


# -- decisions per exception type ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_resume_keeps_the_incarnation_and_its_state() -> None:
    """resume: the same incarnation goes on with the next message, its state kept; the failed
    message is still a dead letter with its error."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", on_failure={Boom: "resume"})])
    [ref] = await start(supervisor)
    await ref.tell(Work(n=1))
    await ref.tell(Fail())
    await ref.tell(Work(n=2))
    assert await bounded(ref.ask(Get())) == [1, 2]
    assert await bounded(ref.ask(Which())) == "a1"
    assert supervisor.child_stops == []
    [letter] = dead_letters.of("a", "failed")
    assert isinstance(letter.error, Boom)
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_mapping_decider_is_looked_up_along_the_mro() -> None:
    """A mapping decider takes the nearest class of the error's MRO: Oops (a Boom) resumes like
    Boom; an error it does not name restarts (the default)."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", on_failure={Boom: "resume"})])
    [ref] = await start(supervisor)
    await ref.tell(Work(n=1))
    await ref.tell(Fail(kind="oops"))
    assert await bounded(ref.ask(Which())) == "a1"
    assert await bounded(ref.ask(Get())) == [1]
    await ref.tell(Fail(kind="value"))
    assert await bounded(ref.ask(Which())) == "a2"
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_mapping_decider_prefers_the_most_specific_class() -> None:
    """A mapping naming both a class and its subclass decides by the subclass for it."""
    journal = Journal()
    decider: dict[type[BaseException], Directive] = {Boom: "restart", Oops: "resume"}
    supervisor = Supervisor([spec(journal, "a", on_failure=decider)])
    [ref] = await start(supervisor)
    await ref.tell(Fail(kind="oops"))
    assert await bounded(ref.ask(Which())) == "a1"
    await ref.tell(Fail(kind="boom"))
    assert await bounded(ref.ask(Which())) == "a2"
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_callable_decider_decides_per_error() -> None:
    """A callable decider is called with the error and returns the directive."""
    journal = Journal()
    seen: list[str] = []

    def decider(error: BaseException) -> Directive:
        seen.append(str(error))
        return "resume" if isinstance(error, Boom) else "stop"

    supervisor = Supervisor([spec(journal, "a", on_failure=decider)])
    [ref] = await start(supervisor)
    probe = TestProbe()
    probe.watch(ref)
    await ref.tell(Fail(kind="boom"))
    assert await bounded(ref.ask(Which())) == "a1"
    await ref.tell(Fail(kind="value"))
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, ValueError)
    assert seen == ["a1 boom", "a1 value"]
    assert journal.made["a"] == 1
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_stop_directive_stops_the_child_for_good() -> None:
    """stop: even a permanent child is not restarted; queued messages become dead letters; the
    supervisor carries on."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", on_failure={Fatal: "stop"})])
    [ref] = await start(supervisor)
    probe = TestProbe()
    probe.watch(ref)
    ref.tell_nowait(Fail(kind="fatal"))
    ref.tell_nowait(Work(n=1))
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, Fatal)
    assert journal.made["a"] == 1
    assert [type(letter.message) for letter in dead_letters.of("a", "stopped")] == [Work]
    assert await bounded(supervisor.reference.ask(Ping())) == 1
    assert supervisor.running
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_escalate_stops_the_child_and_fails_the_supervisor_with_the_error() -> None:
    """escalate: the child stops for good and its supervisor fails with the same error."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a", on_failure={Fatal: "escalate"}), spec(journal, "b")])
    a, b = await start(supervisor)
    probe = TestProbe()
    probe.watch(a)
    probe.watch(b)
    await a.tell(Fail(kind="fatal"))
    error = await probe.expect_terminated(supervisor, error=Fatal)
    assert str(error) == "a1 fatal"
    first, second = await probe.expect_message(Terminated), await probe.expect_message(Terminated)
    assert (first.ref, first.reason) == (a, error)
    assert (second.ref, second.reason) == (b, None)  # stopped with its failing supervisor
    assert journal.made == Counter({"a": 1, "b": 1})


@pytest.mark.asyncio
async def test_escalation_is_not_lost_when_a_sibling_failure_restarts_the_group(
    mock_clock: MockClock,
) -> None:
    """one_for_all, two children failing in the same iteration: one to restart, one to escalate.
    The group restart does not revive the escalating child (whose address closed): the
    supervisor still fails with its error."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy("one_for_all"))
    supervisor = cls([spec(journal, "a"), spec(journal, "b", on_failure={Fatal: "escalate"})])
    a, b = await start(supervisor)
    await a.tell(FailAtGate(kind="boom"))
    await b.tell(FailAtGate(kind="fatal"))
    await mock_clock.wait_all_tasks_blocked()
    assert journal.waiting == 2
    journal.gate.set()
    probe = TestProbe()
    error = await probe.expect_terminated(supervisor, error=Fatal)
    assert str(error) == "b1 fatal"
    assert journal.made["b"] == 1  # the escalating child was not restarted
    assert all(child.stopped for child in (incarnation(a), incarnation(b)))


@pytest.mark.asyncio
async def test_strategy_decider_is_the_default_for_children_without_their_own() -> None:
    """The supervisor strategy's decider applies to a child whose spec has none."""
    journal = Journal()
    cls = supervisor_class(SupervisorStrategy(decider={Boom: "resume"}))
    supervisor = cls([spec(journal, "a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a1"
    await bounded(supervisor.stop())


# -- making children -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_factory_failure_at_restart_counts_as_a_failure_and_is_retried() -> None:
    """A factory that raises at a restart is a failure of that restart: the supervisor retries
    (within its intensity) and the child comes back."""
    journal = Journal()
    calls: list[int] = []

    def factory() -> Worker:
        calls.append(1)
        if len(calls) == 2:
            raise Boom("factory")
        return Worker(journal, "a")

    supervisor = Supervisor([ChildSpec(factory, name="a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    assert await bounded(ref.ask(Which())) == "a2"
    assert len(calls) == 3
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_factory_failing_every_time_exceeds_the_intensity() -> None:
    """A factory that keeps failing at restarts makes the supervisor give up: it fails with
    RestartIntensityExceeded caused by the factory's error, and the child's address closes."""
    journal = Journal()
    calls: list[int] = []

    def factory() -> Worker:
        calls.append(1)
        if len(calls) > 1:
            raise Fatal("factory")
        return Worker(journal, "a")

    cls = supervisor_class(SupervisorStrategy(max_restarts=2, within=60.0))
    supervisor = cls([ChildSpec(factory, name="a")])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    probe = TestProbe()
    error = await probe.expect_terminated(supervisor, error=RestartIntensityExceeded)
    assert isinstance(error.__cause__, Fatal)
    assert len(calls) == 3  # the first and two restart attempts
    probe.watch(ref)
    await probe.expect_message(Terminated)


@pytest.mark.asyncio
async def test_child_spec_form_and_keyword_form() -> None:
    """supervise takes a ChildSpec, or a factory with the same options as keywords."""
    journal = Journal()

    class Keywords(Actor[Ping]):
        def __init__(self) -> None:
            super().__init__()
            self.ref: ActorRef[WorkerMessage] | None = None

        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.ref = await self.supervise(lambda: Worker(journal, "k"), name="k", restart="transient")

        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return 0

    supervisor = Keywords()
    await supervisor.start()
    await bounded(supervisor.reference.ask(Ping()))
    assert supervisor.ref is not None
    assert supervisor.ref.identifier == "k"
    await supervisor.ref.tell(Fail())
    assert await bounded(supervisor.ref.ask(Which())) == "k2"
    await supervisor.ref.tell(Finish())  # transient: a clean end is for good
    await TestProbe().expect_terminated(supervisor.ref)
    await bounded(supervisor.stop())

    with pytest.raises(ValueError, match="unknown restart type"):
        ChildSpec(lambda: Worker(journal, "x"), restart=cast(Any, "sometimes"))


@pytest.mark.asyncio
async def test_stop_child_stops_a_permanent_child_for_good() -> None:
    """stop_child: the child stops (teardown once, no pre_restart) and is not restarted, whatever
    its restart type; stop_child of an actor that is not a child raises ValueError."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a"), spec(journal, "b")])
    a, b = await start(supervisor)
    probe = TestProbe()
    probe.watch(a)
    await bounded(supervisor.stop_child(a))
    notice = await probe.expect_message(Terminated)
    assert notice.reason is None
    assert journal.events == ["a1:setup", "b1:setup", "a1:teardown"]
    assert [child.identifier for child in supervisor.children] == ["b"]
    assert await bounded(b.ask(Which())) == "b1"  # its sibling is untouched
    assert await bounded(supervisor.reference.ask(Ping())) == 1
    assert journal.made["a"] == 1
    with pytest.raises(ValueError, match="is not a child"):
        await supervisor.stop_child(a)
    await bounded(supervisor.stop())


@pytest.mark.asyncio
async def test_supervisor_stop_stops_children_in_reverse_start_order() -> None:
    """Stopping the supervisor stops its supervised children for good, newest first, and none is
    restarted."""
    journal = Journal()
    supervisor = Supervisor([spec(journal, "a"), spec(journal, "b"), spec(journal, "c")])
    refs = await start(supervisor)
    await bounded(supervisor.stop())
    assert journal.of("teardown") == ["c1", "b1", "a1"]
    assert journal.of("pre_restart") == []
    assert all(incarnation(ref).stopped for ref in refs)
    assert sum(journal.made.values()) == 3
