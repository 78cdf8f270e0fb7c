"""Issue 5, death watch: ``watch(ref)`` brings a `Terminated` notice (with the reason) when the
watched actor stops for good, also when it had stopped before the watch."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, cast

import pytest

from actorio import Actor, ActorRef, EndMainLoop, Message, Terminated, UnhandledMessage, dead_letters, handles
from actorio._watch import _PRUNE_FROM
from actorio.lowlevel import mailbox_of, watch
from actorio.testing import TestProbe
from tests.support import bounded


class Boom(Exception):
    pass


class Ping(Message[int]):
    pass


class Die(Message):
    pass


class End(Message):
    pass


class Target(Actor[Ping | Die | End]):
    """Answers Ping, fails on Die, ends cleanly on End."""

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 1

    @handles(Die)
    async def die(self, msg: Die) -> None:
        raise Boom("target failed")

    @handles(End)
    async def end(self, msg: End) -> None:
        raise EndMainLoop()


class Watcher(Actor[Ping]):
    """Handles Terminated although its protocol is Ping only: system messages reach any actor."""

    def __init__(self) -> None:
        super().__init__(identifier="watcher")
        self.notices: list[Terminated] = []
        self.noticed = asyncio.Event()

    @handles(Terminated)
    async def terminated(self, msg: Terminated) -> None:
        self.notices.append(msg)
        self.noticed.set()

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return len(self.notices)


@pytest.mark.asyncio
async def test_watcher_gets_terminated_without_reason_on_a_clean_stop() -> None:
    """A watched actor that stops cleanly sends Terminated with its reference, its identifier and
    no reason."""
    target, watcher = Target(identifier="target"), Watcher()
    ref = await target.start()
    await watcher.start()
    watcher.watch(ref)
    await bounded(target.stop())
    await bounded(watcher.noticed.wait())
    [notice] = watcher.notices
    assert notice.ref == ref
    assert notice.identifier == "target"
    assert notice.reason is None
    assert not notice.failed
    await bounded(watcher.stop())


@pytest.mark.asyncio
async def test_watcher_gets_the_error_when_the_watched_actor_fails() -> None:
    """A watched actor that fails sends Terminated whose reason is its error."""
    target, watcher = Target(), Watcher()
    ref = await target.start()
    await watcher.start()
    watcher.watch(target)  # an actor is accepted as well as its reference
    await ref.tell(Die())
    with pytest.raises(Boom):
        await bounded(target.wait())
    await bounded(watcher.noticed.wait())
    [notice] = watcher.notices
    assert isinstance(notice.reason, Boom)
    assert notice.failed
    await bounded(watcher.stop())


@pytest.mark.asyncio
async def test_watching_an_actor_that_already_stopped_notifies_at_once() -> None:
    """watch() on an actor that stopped before the watch: the notice comes at once, with the
    reason it stopped with."""
    target = Target()
    ref = await target.start()
    await ref.tell(Die())
    with pytest.raises(Boom):
        await bounded(target.wait())
    watcher = Watcher()
    await watcher.start()
    watcher.watch(ref)
    await bounded(watcher.noticed.wait())
    [notice] = watcher.notices
    assert isinstance(notice.reason, Boom)
    probe = TestProbe()
    probe.watch(ref)
    assert isinstance((await probe.expect_message(Terminated)).reason, Boom)
    await bounded(watcher.stop())


@pytest.mark.asyncio
async def test_watching_twice_sends_one_notice_and_unwatch_sends_none() -> None:
    """Watching twice gives one notice; a watcher that unwatched gets none."""
    target = Target()
    ref = await target.start()
    twice, unwatched = TestProbe(), TestProbe()
    twice.watch(ref)
    twice.watch(ref)
    watcher = Watcher()
    await watcher.start()
    watcher.watch(ref)
    watcher.unwatch(ref)
    await ref.tell(End())
    await twice.expect_message(Terminated)
    await twice.expect_no_message(0.05)
    await unwatched.expect_no_message(0)
    assert await bounded(watcher.reference.ask(Ping())) == 0
    await bounded(watcher.stop())


@pytest.mark.asyncio
async def test_watched_actor_never_started_but_stopped_notifies() -> None:
    """An actor stopped before it was ever started has stopped: its watchers are told."""
    target = Target()
    probe = TestProbe()
    probe.watch(target)
    await target.stop()
    notice = await probe.expect_message(Terminated)
    assert notice.reason is None


@pytest.mark.asyncio
async def test_watcher_without_a_terminated_handler_records_an_unhandled_dead_letter() -> None:
    """A watcher with no handler for Terminated carries on; the notice is an unhandled dead letter."""

    class Plain(Actor[Ping]):
        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return 7

    target, plain = Target(), Plain(identifier="plain")
    ref = await target.start()
    await plain.start()
    plain.watch(ref)
    await bounded(target.stop())
    assert await bounded(plain.reference.ask(Ping())) == 7
    [letter] = dead_letters.of("plain", "unhandled")
    assert isinstance(letter.message, Terminated)
    assert isinstance(letter.error, UnhandledMessage)
    await bounded(plain.stop())


@pytest.mark.asyncio
async def test_a_failing_terminated_handler_fails_the_watcher() -> None:
    """A Terminated handler that raises fails the watcher like any handler; the notice is a
    failed dead letter with that error."""

    class Fragile(Actor[Ping]):
        @handles(Terminated)
        async def terminated(self, msg: Terminated) -> None:
            raise Boom("watcher failed")

        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return 0

    target, fragile = Target(), Fragile(identifier="fragile")
    ref = await target.start()
    await fragile.start()
    fragile.watch(ref)
    await bounded(target.stop())
    with pytest.raises(Boom):
        await bounded(fragile.wait())
    [letter] = dead_letters.of("fragile", "failed")
    assert isinstance(letter.message, Terminated)
    assert isinstance(letter.error, Boom)


class ShortLived(Actor[Ping]):
    """Watches a long-lived actor for its whole short life (a request's actor, say)."""

    def __init__(self, target: ActorRef[Ping | Die | End]) -> None:
        super().__init__()
        self.target = target

    async def mainloop_setup(self) -> None:
        self.watch(self.target)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 2


@pytest.mark.asyncio
async def test_watchers_that_stopped_do_not_pile_up_on_a_long_lived_actor() -> None:
    """1,000 short-lived actors watch one long-lived actor, then stop: the long-lived actor's
    watchers are forgotten as they stop (at the latest when their number doubles), so the
    stopped ones are not kept alive by it; a live watcher is still told."""
    async with Target() as target_ref:
        probe = TestProbe()
        probe.watch(target_ref)
        gone: list[weakref.ref[ShortLived]] = []
        for _ in range(1000):
            short = ShortLived(target_ref)
            async with short as ref:
                assert await bounded(ref.ask(Ping())) == 2
            gone.append(weakref.ref(short))
        del short
        mailbox = mailbox_of(target_ref)
        assert mailbox is not None
        assert mailbox.watchers is not None
        assert len(mailbox.watchers) <= 2 * _PRUNE_FROM  # not 1,001
        gc.collect()
        assert sum(ref() is not None for ref in gone) <= 2 * _PRUNE_FROM
        await target_ref.tell(End())
        notice = await probe.expect_message(Terminated)
        assert notice.ref == target_ref


class FailingTeardown(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 3

    async def mainloop_teardown(self) -> None:
        raise Boom("teardown failed")


@pytest.mark.asyncio
async def test_a_teardown_that_fails_is_the_reason_the_watchers_get() -> None:
    """A clean stop whose teardown raises has failed: the watchers' notice says so (reason None
    would say it stopped cleanly), as awaiting the actor does."""
    actor = FailingTeardown()
    ref = await actor.start()
    probe = TestProbe()
    probe.watch(ref)
    assert await bounded(ref.ask(Ping())) == 3
    await bounded(actor.stop())
    notice = await probe.expect_message(Terminated)
    assert isinstance(notice.reason, Boom)
    assert notice.failed
    with pytest.raises(Boom, match="teardown failed"):
        await bounded(actor)


class SlowTeardown(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 4

    async def mainloop_teardown(self) -> None:
        await asyncio.Event().wait()  # never ends: stop's timeout cancels it


@pytest.mark.asyncio
async def test_a_teardown_cancelled_by_stops_timeout_is_still_a_clean_stop() -> None:
    actor = SlowTeardown()
    ref = await actor.start()
    probe = TestProbe()
    probe.watch(ref)
    await bounded(actor.stop(timeout=0.01))
    notice = await probe.expect_message(Terminated)
    assert notice.reason is None


class Unhashable:
    """A watcher of the user's own: not a reference, and no hash (a dataclass with eq)."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.notices: list[Terminated] = []

    def tell_nowait(self, message: Terminated) -> None:
        self.notices.append(message)


@pytest.mark.asyncio
async def test_a_watcher_that_cannot_be_hashed_is_told() -> None:
    async with Target() as ref:
        watchers = [Unhashable() for _ in range(_PRUNE_FROM + 2)]  # past the search, and a prune
        for watcher in watchers:
            watch(ref, cast(Any, watcher))
    assert [len(watcher.notices) for watcher in watchers] == [1] * len(watchers)
