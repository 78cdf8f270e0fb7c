"""Lifecycle edges an Akka or OTP user relies on: a parent ends after its children even when its
stop's timeout runs out, a child is only a child once started, a stop's timeout in a teardown is
still a clean stop, and a descendant may stop its ancestor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import Actor, Message, Terminated, handles
from actorio.testing import TestProbe
from tests.support import bounded


class Park(Message):
    pass


class StopParent(Message):
    pass


class Parks(Actor[Park]):
    """Parks on `Park` until cancelled; its teardown waits for `release`."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(identifier="child")
        self.log = log
        self.parked = asyncio.Event()
        self.tearing_down = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        await asyncio.Event().wait()

    async def mainloop_teardown(self) -> None:
        self.tearing_down.set()
        await self.release.wait()
        await super().mainloop_teardown()
        self.log.append("child ended")


class Holder(Actor):
    def __init__(self, child: Actor[Any] | None = None) -> None:
        super().__init__(identifier="parent")
        self.child = child

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        if self.child is not None:
            await self.register_child(self.child)


@pytest.mark.asyncio
async def test_a_parent_whose_stop_times_out_ends_after_its_cancelled_children() -> None:
    """The timeout cancels the parent while it waits for a child: the child is cancelled, and
    the parent's stop returns, and its watchers are told, only once the child has ended (its
    teardown run). They used to be told while the child still ran."""
    log: list[str] = []
    child = Parks(log)
    parent = Holder(child)
    await parent.start()
    probe = TestProbe(Terminated)
    probe.watch(child)
    probe.watch(parent)
    await child.reference.tell(Park())
    await bounded(child.parked.wait())
    stopping = asyncio.ensure_future(parent.stop(timeout=0.01))
    await bounded(child.tearing_down.wait())  # cancelled by the parent's abort
    for _ in range(20):  # the parent has every chance to end first, and must not
        await asyncio.sleep(0)
    assert not stopping.done()
    assert parent.running
    child.release.set()
    await bounded(stopping)
    log.append("parent stopped")
    assert log == ["child ended", "parent stopped"]
    first = await probe.expect_message(Terminated)
    second = await probe.expect_message(Terminated)
    assert (first.identifier, second.identifier) == ("child", "parent")


@pytest.mark.asyncio
async def test_registering_a_running_actor_fails_and_does_not_make_it_a_child() -> None:
    """It used to raise and yet be kept as a child, stopped with a parent that was not its own."""
    independent = Holder()
    parent = Holder()
    await independent.start()
    await parent.start()
    with pytest.raises(RuntimeError, match="already started"):
        await parent.register_child(independent)
    assert parent.children == []
    await bounded(parent.stop())
    assert independent.running
    await bounded(independent.stop())


@pytest.mark.asyncio
async def test_a_stopped_parent_registers_no_child() -> None:
    """As `supervise` does: a child started then would be stopped by nothing (it used to run on)."""
    parent = Holder()
    await parent.start()
    await bounded(parent.stop())
    child = Holder()
    with pytest.raises(RuntimeError, match="is stopped"):
        await parent.register_child(child)
    assert not child.started


@pytest.mark.asyncio
async def test_a_stop_whose_timeout_runs_out_in_the_teardown_is_a_clean_stop() -> None:
    """``await actor`` returns, as when the timeout cancels a handler: it used to raise
    `CancelledError` in a task that nobody cancelled."""
    log: list[str] = []
    actor = Parks(log)
    await actor.start()
    stopping = asyncio.ensure_future(actor.stop(timeout=0.01))
    await bounded(actor.tearing_down.wait())
    await bounded(stopping)  # the timeout cancelled the teardown: the stop is over
    assert actor._actor_task is not None
    assert not actor._actor_task.cancelled()
    await bounded(actor.wait())
    assert log == []  # the teardown did not finish: it was cancelled


@pytest.mark.asyncio
async def test_a_child_s_handler_may_stop_its_parent() -> None:
    """The parent's stop waits for the child, so the child's ``await parent.stop()`` returns at
    once, as from the parent's own handler: it used to wait out the child's stop timeout (5 s,
    or forever with ``child_stop_timeout = None``)."""

    class Stopper(Actor[StopParent]):
        def __init__(self, parent: Actor[Any]) -> None:
            super().__init__()
            self.parent = parent
            self.returned = False

        @handles(StopParent)
        async def stop_parent(self, msg: StopParent) -> None:
            await self.parent.stop()
            self.returned = True

    class Root(Holder):
        child_stop_timeout = None

    for depth in ("child", "grandchild"):
        root = Root()
        stopper = Stopper(root)
        parent: Holder = root
        if depth == "grandchild":
            middle = Holder()
            parent.child, parent = middle, middle
        parent.child = stopper
        await root.start()
        await stopper.reference.tell(StopParent())
        await bounded(root.wait())
        assert stopper.returned, depth
        assert stopper.stopped, depth


class Stuck(Message):
    pass


class Go(Message):
    pass


@pytest.mark.asyncio
async def test_a_stop_from_a_descendant_keeps_its_timeout() -> None:
    """The child's ``await parent.stop(timeout=...)`` returns at once, and the parent's handler
    still running after the timeout is cancelled: the first version of the return at once let
    the timeout go, and a parent stuck in a handler never stopped."""
    parent_cancelled = asyncio.Event()

    class Parent(Holder):
        @handles(Stuck)
        async def stuck(self, msg: Stuck) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                parent_cancelled.set()
                raise

    class Child(Actor[Go]):
        def __init__(self, parent: Actor[Any]) -> None:
            super().__init__()
            self.parent = parent

        @handles(Go)
        async def go(self, msg: Go) -> None:
            await self.parent.stop(timeout=0.05)

    parent = Parent()
    parent.child = child = Child(parent)
    await parent.start()
    await parent.reference.tell(Stuck())
    await child.reference.tell(Go())
    await bounded(parent_cancelled.wait())
    await bounded(parent.wait())
    assert child.stopped


@pytest.mark.asyncio
async def test_a_child_stopped_by_its_own_child_is_reported_after_both_ended() -> None:
    """``P.stop_child(C)`` from the handler of G, C's child, returns at once (C's stop waits for
    G's handler); C's watchers are told once C has ended, after G. The first version of the
    return at once closed C's mailbox at once and told them while both still ran."""
    log: list[str] = []

    class G(Actor[Go]):
        def __init__(self, p: Actor[Any], c: Actor[Any]) -> None:
            super().__init__(identifier="G")
            self.p, self.c = p, c

        @handles(Go)
        async def go(self, msg: Go) -> None:
            await self.p.stop_child(self.c)
            log.append(f"stop_child returned, C running: {self.c.running}")

        async def mainloop_teardown(self) -> None:
            await super().mainloop_teardown()
            log.append("G ended")

    class C(Holder):
        async def mainloop_teardown(self) -> None:
            await super().mainloop_teardown()
            log.append("C ended")

    p = Holder()
    await p.start()
    c = C()
    c.child = g = G(p, c)
    await p.register_child(c)
    probe = TestProbe(Terminated)
    probe.watch(c)
    probe.watch(g)
    await g.reference.tell(Go())
    first = await probe.expect_message(Terminated)
    log.append(f"Terminated {first.identifier}")
    second = await probe.expect_message(Terminated)
    log.append(f"Terminated {second.identifier}")
    assert log[0] == "stop_child returned, C running: True"
    assert log.index("G ended") < log.index("Terminated G")
    assert log.index("G ended") < log.index("C ended") < log.index("Terminated parent")  # C's name
    assert p.children == []
    await bounded(p.stop())


@pytest.mark.asyncio
async def test_a_child_may_stop_its_parent_while_the_parent_stops_it() -> None:
    """The parent, stopping, waits for its child, whose handler waits for the parent's stop: the
    child is still its child while it stops, so that stop returns at once (it was a deadlock
    with ``child_stop_timeout = None``)."""
    release = asyncio.Event()

    class Child(Actor[Go]):
        def __init__(self, parent: Actor[Any]) -> None:
            super().__init__()
            self.parent = parent
            self.entered = asyncio.Event()
            self.returned = False

        @handles(Go)
        async def go(self, msg: Go) -> None:
            self.entered.set()
            await release.wait()
            await self.parent.stop()
            self.returned = True

    class Root(Holder):
        child_stop_timeout = None

    root = Root()
    root.child = child = Child(root)
    await root.start()
    await child.reference.tell(Go())
    await bounded(child.entered.wait())
    stopping = asyncio.ensure_future(root.stop())
    for _ in range(5):  # the root is waiting for its child now
        await asyncio.sleep(0)
    release.set()
    await bounded(stopping)
    assert child.returned
