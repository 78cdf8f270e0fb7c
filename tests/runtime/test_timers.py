"""Issue 5, timers: keyed single and periodic timers owned by an actor, on the controllable clock.

Replacing or cancelling a timer guarantees its old message is not delivered, even if it was
already queued; every timer is cancelled when the actor stops or restarts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import Actor, Message, dead_letters, handles
from actorio.testing import MockClock
from tests.support import queued


class Tick(Message):
    label: str


class Park(Message):
    pass


class Got(Message[list[tuple[str, float]]]):
    pass


class Arm(Message):
    """Start a single timer ``key`` for ``label`` in ``delay`` seconds."""

    key: str
    label: str
    delay: float


class Fail(Message):
    pass


async def bounded(awaitable: Any, timeout: float = 60.0) -> Any:
    """Every wait that could hang has a bound (virtual seconds here: the clock jumps)."""
    return await asyncio.wait_for(awaitable, timeout)


class Clocked(Actor[Tick | Park | Got | Arm | Fail]):
    """Records each Tick with the loop's time; parks on Park until released."""

    def __init__(self, busy: float = 0.0) -> None:
        super().__init__(identifier="clocked")
        self.busy = busy
        self.ticks: list[tuple[str, float]] = []
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Tick)
    async def tick(self, msg: Tick) -> None:
        self.ticks.append((msg.label, asyncio.get_running_loop().time()))
        if self.busy:
            await asyncio.sleep(self.busy)  # virtual time: a handler that takes a while

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        await self.release.wait()

    @handles(Got)
    async def got(self, msg: Got) -> list[tuple[str, float]]:
        return list(self.ticks)

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        self.start_timer(msg.key, Tick(label=msg.label), msg.delay)

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise RuntimeError("fail")


@pytest.mark.asyncio
async def test_single_timer_fires_once_at_its_delay(mock_clock: MockClock) -> None:
    """start_timer: the message arrives once, `delay` seconds later; the timer is active until
    then."""
    actor = Clocked()
    ref = await actor.start()
    actor.start_timer("once", Tick(label="a"), 2.5)
    assert actor.is_timer_active("once")
    await asyncio.sleep(10.0)
    assert await bounded(ref.ask(Got())) == [("a", 2.5)]
    assert not actor.is_timer_active("once")
    await actor.stop()


@pytest.mark.asyncio
async def test_periodic_timer_ticks_at_a_fixed_rate(mock_clock: MockClock) -> None:
    """start_periodic_timer: a tick every `interval` from the start (a handler that takes 0.3 s
    does not shift the schedule); the first after `initial_delay`; active until cancelled."""
    actor = Clocked(busy=0.3)
    ref = await actor.start()
    actor.start_periodic_timer("p", Tick(label="p"), 1.0, initial_delay=0.5)
    await asyncio.sleep(3.6)
    assert actor.is_timer_active("p")
    actor.cancel_timer("p")
    assert not actor.is_timer_active("p")
    await asyncio.sleep(5.0)
    assert await bounded(ref.ask(Got())) == [("p", 0.5), ("p", 1.5), ("p", 2.5), ("p", 3.5)]
    with pytest.raises(ValueError, match="interval"):
        actor.start_periodic_timer("bad", Tick(label="x"), 0.0)
    await actor.stop()


@pytest.mark.asyncio
async def test_replacing_a_timer_drops_its_already_queued_tick(mock_clock: MockClock) -> None:
    """Starting a timer under a key in use replaces it: the old tick is not delivered even though
    it was already queued; the new one arrives at its own time."""
    actor = Clocked()
    ref = await actor.start()
    actor.start_timer("k", Tick(label="old"), 1.0)
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    await asyncio.sleep(2.0)  # the old tick fires while the actor is parked: queued
    assert queued(ref) == 1
    actor.start_timer("k", Tick(label="new"), 3.0)  # at t = 5
    actor.release.set()
    await asyncio.sleep(10.0)
    assert await bounded(ref.ask(Got())) == [("new", 5.0)]
    await actor.stop()


@pytest.mark.asyncio
async def test_cancelling_a_timer_drops_its_already_queued_tick(mock_clock: MockClock) -> None:
    """cancel_timer: the tick is not delivered even though it was already queued; other timers
    are untouched."""
    actor = Clocked()
    ref = await actor.start()
    actor.start_timer("k", Tick(label="cancelled"), 1.0)
    actor.start_timer("other", Tick(label="kept"), 1.5)
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    await asyncio.sleep(2.0)
    assert queued(ref) == 2
    actor.cancel_timer("k")
    actor.cancel_timer("unknown")  # nothing to cancel: no error
    actor.release.set()
    assert await bounded(ref.ask(Got())) == [("kept", 2.0)]
    await actor.stop()


@pytest.mark.asyncio
async def test_timers_are_cancelled_when_the_actor_stops(mock_clock: MockClock) -> None:
    """Stopping the actor cancels its timers: nothing is delivered or dead-lettered later."""
    dead_letters.clear()
    actor = Clocked()
    await actor.start()
    actor.start_timer("once", Tick(label="a"), 1.0)
    actor.start_periodic_timer("p", Tick(label="p"), 1.0)
    await actor.stop()
    assert not actor.is_timer_active("once")
    assert not actor.is_timer_active("p")
    await asyncio.sleep(5.0)
    assert actor.ticks == []
    assert dead_letters.of("clocked") == []


class Host(Actor[Got]):
    """Supervises one Clocked child."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[Clocked] = []

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        await self.supervise(self.make)

    def make(self) -> Clocked:
        self.made.append(Clocked())
        return self.made[-1]

    @handles(Got)
    async def got(self, msg: Got) -> list[tuple[str, float]]:
        return []


@pytest.mark.asyncio
async def test_timers_are_cancelled_when_the_actor_restarts(mock_clock: MockClock) -> None:
    """A restart cancels the failed incarnation's timers: the new incarnation does not receive
    their ticks."""
    host = Host()
    await host.start()
    await bounded(host.reference.ask(Got()))
    [first] = host.made
    ref = first.reference
    await ref.tell(Arm(key="k", label="before", delay=2.0))
    await ref.tell(Fail())
    assert await bounded(ref.ask(Got())) == []
    assert len(host.made) == 2
    assert not host.made[1].is_timer_active("k")
    await asyncio.sleep(5.0)
    assert await bounded(ref.ask(Got())) == []
    await host.stop()


@pytest.mark.asyncio
async def test_a_queued_tick_of_the_failed_incarnation_is_dropped_at_restart(mock_clock: MockClock) -> None:
    """A tick already queued behind the failing message is not delivered to the new incarnation."""
    host = Host()
    await host.start()
    await bounded(host.reference.ask(Got()))
    [first] = host.made
    ref = first.reference
    first.start_timer("k", Tick(label="queued"), 1.0)
    await ref.tell(Park())
    await bounded(first.parked.wait())
    await ref.tell(Fail())
    await asyncio.sleep(2.0)  # the tick is queued behind Fail
    first.release.set()
    assert await bounded(ref.ask(Got())) == []
    assert len(host.made) == 2
    await host.stop()
