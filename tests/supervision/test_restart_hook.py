"""The restart hook (`actorio.lowlevel.add_restart_hook`, the seam of the ``actorio.restarts``
metric): called once for each restart a supervisor makes, when the new incarnation is made."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from actorio import Actor, Backoff, Message, SupervisorStrategy, handles
from actorio.lowlevel import add_restart_hook, remove_restart_hook

pytestmark = pytest.mark.asyncio


class Crash(Message):
    pass


class Ping(Message[int]):
    pass


class Flaky(Actor[Crash | Ping]):
    @handles(Crash)
    async def crash(self, message: Crash) -> None:
        raise ValueError("boom")

    @handles(Ping)
    async def ping(self, message: Ping) -> int:
        return 1


class Parent(Actor):
    supervisor_strategy = SupervisorStrategy(max_restarts=10, within=60.0)


class AllParent(Actor):
    supervisor_strategy = SupervisorStrategy("one_for_all", max_restarts=10, within=60.0)


@pytest.fixture
def calls() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def hook(actor: Actor[Crash | Ping], error: BaseException | None) -> None:
        seen.append((type(actor).__name__, repr(error)))

    add_restart_hook(hook)
    try:
        yield seen
    finally:
        remove_restart_hook(hook)


async def test_a_factory_that_fails_once_is_one_restart(calls: list[tuple[str, str]]) -> None:
    failing = [False]

    def factory() -> Flaky:
        if failing[0]:
            failing[0] = False
            raise RuntimeError("factory failed once")
        return Flaky()

    parent = Parent()
    async with parent:
        child = await parent.supervise(factory, name="f")
        failing[0] = True
        await child.tell(Crash())
        assert await child.ask(Ping(), timeout=10) == 1  # behind the crash: the incarnation made
    assert len(calls) == 1


@pytest.mark.mock_clock
async def test_a_restart_that_did_not_happen_is_not_one(calls: list[tuple[str, str]]) -> None:
    parent = Parent()
    await parent.start()
    child = await parent.supervise(Flaky, name="f", backoff=Backoff(min_delay=30, max_delay=30))
    await child.tell(Crash())
    with pytest.raises(asyncio.TimeoutError):  # the restart waits 30 s (virtual): not made yet
        await child.ask(Ping(), timeout=1)
    await parent.stop()
    assert calls == []


async def test_each_child_of_a_group_restart_is_one(calls: list[tuple[str, str]]) -> None:
    parent = AllParent()
    async with parent:
        children = [await parent.supervise(Flaky, name=f"c{n}") for n in range(3)]
        await children[0].tell(Crash())
        for child in children:
            assert await child.ask(Ping(), timeout=10) == 1
    assert calls == [("Flaky", "ValueError('boom')")] * 3
