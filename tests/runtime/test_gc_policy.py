"""The garbage collector's policy of `actorio.run`: applied while the program runs, restored
after, left alone when opted out; and actors built after the freeze are still freed."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from actorio import Actor, EndMainLoop, GcPolicy, Message, handles, run, serve

COUNT = int(os.environ.get("ACTORIO_GC_POLICY_ACTORS", "2000"))
"""Actors the root starts and stops under the policy (set it to 10000 for a soak)."""


class Add(Message[int]):
    n: int


class Counter(Actor[Add]):
    @handles(Add)
    async def add(self, msg: Add) -> int:
        return msg.n + 1


class Observed:
    """What a root saw of the collector while it ran."""

    def __init__(self) -> None:
        self.threshold: tuple[int, int, int] | None = None
        self.frozen = -1
        self.alive_after_stop = -1


class Root(Actor[Any]):
    """Starts ``count`` actors, asks each once, stops them, checks they are gone, and ends."""

    def __init__(self, observed: Observed, count: int = 0) -> None:
        super().__init__()
        self.observed = observed
        self.count = count

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.tell_nowait(Add(n=0))

    @handles(Add)
    async def go(self, msg: Add) -> int:
        self.observed.threshold = gc.get_threshold()
        self.observed.frozen = gc.get_freeze_count()
        actors = [Counter() for _ in range(self.count)]
        references = [await actor.start() for actor in actors]
        replies = await asyncio.gather(
            *(reference.ask(Add(n=index)) for index, reference in enumerate(references))
        )
        assert replies == [index + 1 for index in range(self.count)]
        await asyncio.wait_for(asyncio.gather(*(actor.stop() for actor in actors)), 60)
        watched = weakref.WeakSet(actors)
        del actors, references, replies
        gc.collect()
        self.observed.alive_after_stop = len(watched)
        raise EndMainLoop()


@pytest.fixture
def collector() -> Iterator[tuple[int, int, int]]:
    """The collector's settings before the test; checked unchanged after it, and put back anyway."""
    gc.collect()
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        yield before
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == frozen
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


@pytest.mark.timeout(120)
def test_run_applies_the_policy_and_actors_built_after_the_freeze_are_freed(
    collector: tuple[int, int, int],
) -> None:
    observed = Observed()
    run(Root(observed, COUNT), signals=())
    assert observed.threshold == (20_000, *collector[1:])
    assert observed.frozen > 0  # what start-up built is frozen
    assert observed.alive_after_stop == 0, "actors built after the freeze are still referenced"


def test_run_without_a_policy_leaves_the_collector_alone(collector: tuple[int, int, int]) -> None:
    observed = Observed()
    run(Root(observed), signals=(), gc_policy=None)
    assert observed.threshold == collector
    assert observed.frozen == gc.get_freeze_count()


def test_run_with_a_policy_of_its_own(collector: tuple[int, int, int]) -> None:
    observed = Observed()
    run(Root(observed), signals=(), gc_policy=GcPolicy(young_threshold=5_000, freeze_after_start=False))
    assert observed.threshold == (5_000, *collector[1:])
    assert observed.frozen == gc.get_freeze_count()


def test_run_restores_the_collector_when_the_root_fails(collector: tuple[int, int, int]) -> None:
    class Failing(Actor[Any]):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(Failing(), signals=())


@pytest.mark.asyncio
async def test_serve_applies_no_policy_unless_asked(collector: tuple[int, int, int]) -> None:
    observed = Observed()
    await serve(Root(observed), signals=[signal.SIGTERM])
    assert observed.threshold == collector


def test_a_young_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="young_threshold"):
        GcPolicy(young_threshold=0)
