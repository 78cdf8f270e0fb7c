"""The per-type queues of entity tells (``actorio.nats._entity_queues``), without a server: each
type in its own order, one type's stuck send holding up no other type, a queue dropped once
empty, and what is left when its task is cancelled (the node closed)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from actorio.nats._entity_queues import Send, TellQueues

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Noting(TellQueues):
    """Sets ``queued`` at each send queued."""

    def __init__(self, spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], node_id: str) -> None:
        super().__init__(spawn, node_id)
        self.queued = asyncio.Event()

    def tell_nowait(self, entity_type: str, send: Send) -> None:
        super().tell_nowait(entity_type, send)
        self.queued.set()


def queues() -> tuple[Noting, set[asyncio.Task[Any]]]:
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        tasks.add(task)
        return task

    return Noting(spawn, "node-1"), tasks


def recording(sent: list[str], name: str, wait: asyncio.Event | None = None) -> Send:
    async def send() -> None:
        if wait is not None:
            await wait.wait()
        sent.append(name)

    return send


async def test_each_type_keeps_its_order_and_a_stuck_type_holds_up_no_other() -> None:
    tells, tasks = queues()
    sent: list[str] = []
    never = asyncio.Event()
    tells.tell_nowait("stuck", recording(sent, "stuck-1", never))
    tells.tell_nowait("stuck", recording(sent, "stuck-2"))
    for i in range(3):
        tells.tell_nowait("ok", recording(sent, f"ok-{i}"))
    await asyncio.wait_for(tells.send("ok", recording(sent, "ok-told")), 5)  # after the queued ones
    assert sent == ["ok-0", "ok-1", "ok-2", "ok-told"]
    assert "ok" not in tells
    assert "stuck" in tells
    await asyncio.wait_for(tells.send("ok", recording(sent, "ok-direct")), 5)  # nothing queued: at once
    assert sent[-1] == "ok-direct"
    assert "ok" not in tells
    never.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sent[-2:] == ["stuck-1", "stuck-2"]
    assert "stuck" not in tells


async def test_a_cancelled_queue_fails_the_tells_awaiting_it_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tells, tasks = queues()
    sent: list[str] = []
    tells.tell_nowait("stuck", recording(sent, "stuck-1", asyncio.Event()))
    tells.tell_nowait("stuck", recording(sent, "stuck-2"))
    tells.queued.clear()
    told = asyncio.ensure_future(tells.send("stuck", recording(sent, "stuck-told")))
    await asyncio.wait_for(tells.queued.wait(), 5)  # told is queued
    for task in tasks:
        task.cancel()
    with pytest.raises(ConnectionError, match="the node node-1 closed before the tell was sent"):
        await asyncio.wait_for(told, 5)
    assert sent == []
    assert "stuck" not in tells
    assert "3 tell(s) to entities of type 'stuck' not sent: the node closed" in caplog.text


async def test_a_failed_tell_nowait_is_logged_and_the_queue_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    tells, _ = queues()
    sent: list[str] = []

    async def failing() -> None:
        raise OSError("refused")

    tells.tell_nowait("t", failing)
    await asyncio.wait_for(tells.send("t", recording(sent, "after")), 5)
    assert sent == ["after"]
    assert "an entity's tell_nowait could not be sent: OSError('refused')" in caplog.text

    async def failing_told() -> None:
        raise OSError("told")

    tells.tell_nowait("t", recording(sent, "queued"))
    with pytest.raises(OSError, match="told"):  # an awaited tell's error is its caller's
        await asyncio.wait_for(tells.send("t", failing_told), 5)


async def test_a_queue_whose_task_is_cancelled_before_it_starts_is_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node's close may cancel the task before its first step: its queue stayed, with no
    task, and every later tell of the type waited for good."""
    tells, tasks = queues()
    sent: list[str] = []
    tells.tell_nowait("t", recording(sent, "lost"))
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)
    await asyncio.sleep(0)  # the tasks' done callbacks run
    assert "t" not in tells
    assert "1 tell(s) to entities of type 't' not sent: the node closed" in caplog.text
    await asyncio.wait_for(tells.send("t", recording(sent, "told")), 5)
    assert sent == ["told"]


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="eager tasks: Python 3.12+")
async def test_tell_nowait_with_an_eager_task_factory_loses_nothing() -> None:
    """An eager task runs at once: it found the queue empty, and the tell went to a dropped
    queue."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        tells, tasks = queues()
        sent: list[str] = []
        gate = asyncio.Event()
        tells.tell_nowait("t", recording(sent, "a"))
        tells.tell_nowait("t", recording(sent, "b", gate))
        tells.tell_nowait("t", recording(sent, "c"))
        gate.set()
        await asyncio.wait(tasks, timeout=5)
        assert sent == ["a", "b", "c"]
        assert "t" not in tells
    finally:
        loop.set_task_factory(None)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling: Python 3.11+")
async def test_a_send_cancelled_by_someone_else_is_logged_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its `CancelledError` is not the task's: the queue is not dropped as if the node closed."""
    tells, _ = queues()
    sent: list[str] = []

    async def cancelled_elsewhere() -> None:
        raise asyncio.CancelledError

    tells.tell_nowait("t", cancelled_elsewhere)
    await asyncio.wait_for(tells.send("t", recording(sent, "after")), 5)
    assert sent == ["after"]
    assert "an entity's tell_nowait could not be sent: CancelledError()" in caplog.text
    assert "not sent: the node closed" not in caplog.text


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling: Python 3.11+")
async def test_an_awaited_tell_whose_send_is_cancelled_by_someone_else_returns() -> None:
    """Queued behind another, it waited for good: its future was never settled."""
    tells, _ = queues()
    sent: list[str] = []
    gate = asyncio.Event()

    async def cancelled_elsewhere() -> None:
        raise asyncio.CancelledError

    tells.tell_nowait("t", recording(sent, "first", gate))
    told = asyncio.ensure_future(tells.send("t", cancelled_elsewhere))
    await asyncio.sleep(0)  # queued behind the first
    gate.set()
    await asyncio.wait([told], timeout=5)
    assert told.cancelled()
    await asyncio.wait_for(tells.send("t", recording(sent, "after")), 5)
    assert sent == ["first", "after"]


async def test_a_tell_being_sent_when_the_node_closes_fails_with_connection_error() -> None:
    tells, tasks = queues()
    sending = asyncio.Event()

    async def blocked() -> None:
        sending.set()
        await asyncio.Event().wait()

    gate = asyncio.Event()
    tells.tell_nowait("t", recording([], "first", gate))
    told = asyncio.ensure_future(tells.send("t", blocked))  # queued behind the first
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(sending.wait(), 5)
    for task in tasks:
        task.cancel()
    with pytest.raises(ConnectionError, match="closed before the tell was sent"):
        await asyncio.wait_for(told, 5)
