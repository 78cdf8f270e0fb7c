"""The queue of tells an entity host forwards (`_forwarding.Forwarder`), on its own: what the
entity tests cannot reach through a server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from actorio import dead_letters
from actorio.nats._forwarding import HOPS, MAX_HOPS, Forwarder


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
