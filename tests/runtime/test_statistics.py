"""`Actor.statistics`, `lowlevel.snapshot`, and the handler wrappers they and tracing rely on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from actorio import Actor, ActorStatistics, Message, handles
from actorio.lowlevel import (
    Handler,
    actor_of,
    add_handler_wrapper,
    counting_wrapper,
    handler_wrappers,
    remove_handler_wrapper,
    snapshot,
)


class Work(Message[int]):
    n: int


class Fail(Message):
    pass


class Look(Message[ActorStatistics]):
    pass


class Worker(Actor[Work | Fail | Look]):
    @handles(Work)
    async def work(self, message: Work) -> int:
        return message.n

    @handles(Fail)
    async def fail(self, message: Fail) -> None:
        raise ValueError("no")

    @handles(Look)
    async def look(self, message: Look) -> ActorStatistics:
        return self.statistics()


class Untyped(Actor):
    async def handle_message(self, message: Any) -> None:
        await message.sender.tell(Work(n=42))


@pytest.fixture
def counting() -> Iterator[None]:
    add_handler_wrapper(counting_wrapper)
    try:
        yield
    finally:
        remove_handler_wrapper(counting_wrapper)
    assert counting_wrapper not in handler_wrappers()


@pytest.mark.asyncio
async def test_statistics_without_counting_read_the_actor_only() -> None:
    async with Worker(identifier="w") as ref:
        ref.tell_nowait(Work(n=1))
        ref.tell_nowait(Work(n=2))
        worker = actor_of(ref)
        assert worker is not None
        before = worker.statistics()
        inside = await ref.ask(Look())
    assert before.queued == 2
    assert before.handling is None
    assert before.handled is None
    assert before.failed is None
    assert before.handler_seconds is None
    assert inside.handling == "Look"
    assert inside.running
    assert inside.identifier == "w"
    assert inside.actor_class == f"{__name__}.Worker"


@pytest.mark.usefixtures("counting")
@pytest.mark.asyncio
async def test_counting_gives_handled_failed_and_time() -> None:
    async with Worker() as ref:
        for n in range(3):
            assert await ref.ask(Work(n=n)) == n
        with pytest.raises(ValueError, match="no"):
            await ref.ask(Fail())
        inside = await ref.ask(Look())
        worker = actor_of(ref)
        assert worker is not None
        after = worker.statistics()
    assert inside.handled == 4
    assert inside.handling_seconds is not None
    assert after.handled == 5
    assert after.failed == 1
    assert after.handler_seconds is not None
    assert after.handler_seconds > 0
    assert after.handling_seconds is None
    assert after.handler_p50 is not None
    assert after.handler_p99 is not None
    assert 0 < after.handler_p50 <= after.handler_p99 <= after.handler_seconds


@pytest.mark.usefixtures("counting")
@pytest.mark.asyncio
async def test_wrapped_handle_message_still_answers_an_ask_with_what_it_tells() -> None:
    async with Untyped() as ref:
        reply = await ref.ask(Fail())
    assert isinstance(reply, Work)
    assert reply.n == 42


@pytest.mark.asyncio
async def test_a_wrapper_sees_each_message_and_comes_off() -> None:
    seen: list[tuple[str, str | None, str]] = []

    def wrapper(actor_class: type, message_type: type | None, handler: Handler) -> Handler:
        async def wrapped(actor: Any, message: Any) -> Any:
            seen.append(
                (actor_class.__name__, getattr(message_type, "__name__", None), type(message).__name__)
            )
            return await handler(actor, message)

        return wrapped

    add_handler_wrapper(wrapper)
    try:

        class Later(Worker):  # a class made while the wrapper is on is wrapped too
            pass

        async with Later() as ref:
            assert await ref.ask(Work(n=3)) == 3
        async with Untyped() as ref:
            await ref.ask(Work(n=1))
    finally:
        remove_handler_wrapper(wrapper)
    assert seen == [("Later", "Work", "Work"), ("Untyped", None, "Work")]
    seen.clear()
    async with Worker() as ref:
        assert await ref.ask(Work(n=3)) == 3
    assert seen == []


class Tree(Actor[Work]):
    @handles(Work)
    async def work(self, message: Work) -> int:
        return message.n

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        await self.supervise(Worker, name="worker")
        await self.register_child(Worker(identifier="other"))


@pytest.mark.asyncio
async def test_snapshot_is_a_json_ready_tree() -> None:
    async with Tree(identifier="root") as ref:
        await ref.ask(Work(n=0))
        root = actor_of(ref)
        assert root is not None
        tree = snapshot(root)
    assert json.loads(json.dumps(tree)) == tree
    assert tree["identifier"] == "root"
    assert [child["identifier"] for child in tree["children"]] == ["worker", "other"]
    assert tree["children"][0]["children"] == []
    assert tree["children"][0]["restarts"] == 0


class Restarting(Actor[Fail | Look]):
    @handles(Fail)
    async def fail(self, message: Fail) -> None:
        raise ValueError("again")

    @handles(Look)
    async def look(self, message: Look) -> ActorStatistics:
        return self.statistics()


class Holder(Actor[Look]):
    @handles(Look)
    async def look(self, message: Look) -> ActorStatistics:
        return self.statistics()


@pytest.mark.asyncio
async def test_restarts_are_counted() -> None:
    async with Holder() as parent_ref:
        parent = actor_of(parent_ref)
        assert parent is not None
        child = await parent.supervise(Restarting)
        await child.tell(Fail())
        await child.tell(Fail())
        statistics = await asyncio.wait_for(child.ask(Look()), 10)
        assert (await parent_ref.ask(Look())).children == 1
    assert statistics.restarts == 2
