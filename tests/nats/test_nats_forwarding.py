"""The queue of tells an entity host forwards (`_forwarding.Forwarder`), on its own: what the
entity tests cannot reach through a server."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import nats.errors
import pytest
from nats.aio.msg import Msg

from actorio import dead_letters
from actorio.nats._forwarding import HOPS, MAX_HOPS, OWNER_FRESH, Forwarder
from actorio.nats._placement import Owner
from actorio.testing import MockClock


class _Entities:
    """What a `Forwarder` reads of its node's entities before it sends: nothing, for a tell
    forwarded too often already (a dead letter at once)."""

    _nc = None
    node_id = "here"


def _forwarded_too_often() -> Msg:
    return Msg(
        _client=cast(Any, None), subject="x.entity.t.here.k", data=b"{}", headers={HOPS: str(MAX_HOPS)}
    )


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="eager tasks: Python 3.12+")
@pytest.mark.asyncio
async def test_forwarding_with_an_eager_task_factory_loses_nothing() -> None:
    """An eager task runs at once: the queue's task ran to its end inside `forward`, and was
    kept as the running one, so no task was ever started again for the tells after it."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        assert isinstance(task, asyncio.Task)
        tasks.append(task)
        return task

    try:
        dead_letters.clear()
        forwarder = Forwarder(cast(Any, _Entities()), "t", cast(Any, None), spawn)
        for _ in range(3):
            forwarder.forward(_forwarded_too_often(), "k")
        await asyncio.wait(tasks, timeout=5)
        assert len(forwarder) == 0
        assert [letter.reason for letter in dead_letters.of("t/k")] == ["stopped"] * 3
    finally:
        loop.set_task_factory(None)
        dead_letters.clear()


class _Connection:
    """Publishes into a list, or fails as a closed connection does."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        if self.closed:
            raise nats.errors.ConnectionClosedError
        self.sent.append(subject)


class _Host:
    def __init__(self, node: str) -> None:
        self.node = node


class _Hosts:
    def live(self, entity_type: str) -> list[_Host]:
        return [_Host("here"), _Host("there")]


class _Node:
    """What a `Forwarder` reads of its node's entities."""

    node_id = "here"
    hosts = _Hosts()

    def __init__(self, nc: _Connection) -> None:
        self._nc = nc

    def placement(self, key: str, hosts: Sequence[_Host]) -> _Host:
        return hosts[0]

    def subject(self, entity_type: str, node: str, key: str) -> str:
        return f"p.entity.{entity_type}.{node}.{key}"


class _Placements:
    """A bucket whose reads take ``delay`` seconds, then fail with ``failure`` if it is set."""

    def __init__(self, delay: float = 0.0, failure: Exception | None = None) -> None:
        self.delay, self.failure, self.reads = delay, failure, 0

    async def lookup(self, key: str) -> Owner | None:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        return Owner("there", 7)


def _tell(key: str) -> Msg:
    return Msg(
        _client=cast(Any, None), subject=f"p.entity.t.here.{key}", data=b"{}", headers={"Actorio-Lease": "9"}
    )


def _forwarder(placements: _Placements) -> tuple[Forwarder, _Connection]:
    nc = _Connection()
    return Forwarder(cast(Any, _Node(nc)), "t", cast(Any, placements), asyncio.ensure_future), nc


@pytest.mark.asyncio
async def test_a_read_that_failed_is_not_read_again_within_the_second(mock_clock: MockClock) -> None:
    """A key's failed read is its tells' answer for a second (a read that timed out, every
    key's): a bucket that does not answer costs one timeout a second, not one a tell, in series."""
    placements = _Placements(delay=5.0, failure=asyncio.TimeoutError())
    forwarder, _ = _forwarder(placements)
    dead_letters.clear()
    try:
        for key in ["k"] * 10 + ["other"]:
            forwarder.forward(_tell(key), key)
        await forwarder.flushed(60)
        assert placements.reads == 1
        assert mock_clock.time() == 5.0
        letters = dead_letters.of(reason="stopped")
        assert len(letters) == 11
        assert all(isinstance(letter.error, asyncio.TimeoutError) for letter in letters)
        await asyncio.sleep(OWNER_FRESH)
        placements.failure = None
        forwarder.forward(_tell("k"), "k")
        await forwarder.flushed(60)
        assert placements.reads == 2  # read again once the failure is a second old
    finally:
        dead_letters.clear()


@pytest.mark.asyncio
async def test_a_queue_task_cancelled_before_its_first_step_leaves_dead_letters_and_a_new_task() -> None:
    """The host closing may cancel the queue's task before it ran: what was queued is dead
    letters, and the next tell starts a task again (the queue was stuck for good)."""
    forwarder, nc = _forwarder(_Placements())
    dead_letters.clear()
    try:
        forwarder.forward(_tell("k"), "k")
        task = forwarder._task  # pyright: ignore[reportPrivateUsage]
        assert task is not None
        task.cancel()
        await asyncio.wait([task])
        await asyncio.sleep(0)  # its done callback
        assert len(forwarder) == 0
        assert [letter.reason for letter in dead_letters.of("t/k")] == ["stopped"]
        forwarder.forward(_tell("k"), "k")
        await forwarder.flushed(10)
        assert nc.sent == ["p.entity.t.there.k"]
    finally:
        dead_letters.clear()


@pytest.mark.asyncio
async def test_a_tell_the_connection_could_not_send_is_a_dead_letter() -> None:
    forwarder, nc = _forwarder(_Placements())
    dead_letters.clear()
    try:
        forwarder.forward(_tell("k"), "k")
        await forwarder.flushed(10)
        nc.closed = True  # the owner is known: no read fails first
        for _ in range(3):
            forwarder.forward(_tell("k"), "k")
        await forwarder.flushed(10)
        assert nc.sent == ["p.entity.t.there.k"]
        letters = dead_letters.of("t/k")
        assert [letter.reason for letter in letters] == ["stopped"] * 3
        assert all(isinstance(letter.error, nats.errors.ConnectionClosedError) for letter in letters)
    finally:
        dead_letters.clear()


@pytest.mark.asyncio
async def test_the_owners_read_more_than_a_second_ago_are_not_kept(mock_clock: MockClock) -> None:
    """Owners are kept a second, the time they are used: 9,000 keys read once, then another
    a second later, leave one (they held about 54 MB for 100,000 keys of 128 characters)."""
    forwarder, nc = _forwarder(_Placements())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(9_000):  # (the queue holds 10,000)
            key = f"{number:0128d}"
            forwarder.forward(_tell(key), key)
        await forwarder.flushed(60)
        await asyncio.sleep(OWNER_FRESH)
        forwarder.forward(_tell("last"), "last")
        await forwarder.flushed(60)
        assert len(nc.sent) == 9_001
        nc.sent.clear()  # (the stub's record, not the forwarder's)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(forwarder._owners) == 1  # pyright: ignore[reportPrivateUsage]
    assert grown < 1_000_000, grown


@pytest.mark.asyncio
async def test_an_owner_is_taken_as_read_a_second_from_when_it_was_asked(mock_clock: MockClock) -> None:
    """A read that took 0.9 s is used until a second after it was sent, not after it came
    back: a key moved meanwhile is read again as soon as it is a second old."""
    placements = _Placements(delay=0.9)
    forwarder, _ = _forwarder(placements)
    forwarder.forward(_tell("k"), "k")
    await forwarder.flushed(60)
    assert (placements.reads, mock_clock.time()) == (1, 0.9)
    await asyncio.sleep(0.2)  # 1.1 s after it was asked, 0.2 s after it came back
    forwarder.forward(_tell("k"), "k")
    await forwarder.flushed(60)
    assert placements.reads == 2
