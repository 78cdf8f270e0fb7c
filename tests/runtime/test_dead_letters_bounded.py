"""Dead letters cost bounded memory and log space whatever the wire sends: a raw payload is kept
as a preview, an invalid payload's error keeps neither the payload nor its traceback, a failed
handler's error does not keep its incarnation alive, and log lines are cut."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import traceback
import tracemalloc
import weakref
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from actorio import (
    Actor,
    ActorRef,
    ActorStopped,
    InvalidPayload,
    Message,
    PayloadPreview,
    SupervisorStrategy,
    dead_letters,
    handles,
)
from actorio._dead_letters import LOG_CHARS, PREVIEW_BYTES
from actorio.lowlevel import task_of
from tests.support import BOUND, bounded


class Greet(Message):
    name: str


class Greeter(Actor[Greet]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> None:
        pass


@pytest.fixture(autouse=True)
def clean_dead_letters() -> Iterator[None]:
    dead_letters.clear()
    yield
    dead_letters.clear()


def _refused(payload: bytes) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as caught:
        Greeter.protocol.validate(payload)
    return caught.value


def test_a_large_raw_payload_is_kept_as_a_preview_with_its_size() -> None:
    payload = b'{"type":"Greet","data":{"name":' + b"1" * 1_000_000 + b"}}"
    letter = dead_letters.record(payload, "greeter", "invalid", _refused(payload))
    assert isinstance(letter.message, PayloadPreview)
    assert letter.message.size == len(payload)
    assert letter.message.head == payload[:PREVIEW_BYTES]
    text = "é" * 1000  # 2,000 bytes in UTF-8
    assert dead_letters.record(text, "greeter", "invalid").message == PayloadPreview(
        text.encode()[:PREVIEW_BYTES], 2000
    )


def test_a_small_raw_payload_is_kept_as_it_is() -> None:
    assert dead_letters.record(b'{"type":"Nope"}', "greeter", "invalid").message == b'{"type":"Nope"}'


def test_an_invalid_payload_error_quotes_the_payload_within_bounds() -> None:
    """A 600 KB ``type`` string used to make a 1.2 MB error message and log line."""
    error = _refused(json.dumps({"type": "x" * 600_000, "data": {}}).encode())
    assert error.errors[0].kind == "unknown_type"
    assert len(str(error)) < 1_000
    many = json.dumps({"type": "Greet", "data": {"name": 1, **{f"extra{i}": i for i in range(500)}}})
    error = _refused(many.encode())
    assert len(error.errors) == 21
    assert error.errors[-1].kind == "too_many_problems"
    assert "more problems not listed" in error.errors[-1].message
    long_id = json.dumps({"type": "Nope", "id": "i" * 10_000})
    assert _refused(long_id.encode()).id is None
    assert _refused(json.dumps({"type": "Nope", "id": "short"}).encode()).id == "short"


def test_log_lines_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    payload = b'{"type":"' + b"y" * 600_000 + b'"}'
    with caplog.at_level(logging.INFO, logger="actorio.dead_letters"):
        dead_letters.record(payload, "greeter", "invalid", _refused(payload))
        dead_letters.record(Greet(name="z" * 100_000), "greeter", "failed", ValueError("w" * 100_000))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert all(len(line) < 3 * LOG_CHARS for line in lines)


def test_a_thousand_invalid_payloads_cost_bounded_memory() -> None:
    """Each record used to keep the raw payload and the error's traceback, whose frames held it
    again (3 MB a record for a 1 MB payload). Now: a preview and a bare error."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            payload = b'{"type":"Greet","data":{"name":%d' % i + b"1" * 100_000 + b"}}"  # each its own
            dead_letters.record(payload, "greeter", "invalid", _refused(payload))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert dead_letters.counts["invalid"] == 1000
    # 1,000 records of a 1 KB preview and a small error: a few MB at most, not 100 MB and more.
    assert grown < 10_000_000, grown


class Fail(Message):
    pass


class Ping(Message[int]):
    pass


INCARNATIONS: weakref.WeakSet[Actor[Any]] = weakref.WeakSet()


class Failing(Actor[Fail | Ping]):
    """An incarnation that holds a large state and fails on `Fail`, chaining the error."""

    def __init__(self) -> None:
        super().__init__()
        self.state = bytearray(100_000)
        INCARNATIONS.add(self)

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        try:
            raise KeyError("cause")
        except KeyError as error:
            raise RuntimeError("failed on purpose") from error

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 1


class Parent(Actor):
    supervisor_strategy = SupervisorStrategy(max_restarts=1000, within=60.0)


def _alive() -> int:
    gc.collect()
    return len(INCARNATIONS)


@pytest.mark.asyncio
async def test_failed_records_do_not_keep_their_incarnations_alive() -> None:
    """Each record of a failed message used to keep its incarnation (and its state) alive through
    its error's traceback: 1,000 records held 303 MB. The traceback still names the handler."""
    logging.disable(logging.WARNING)
    try:
        parent = Parent()
        async with parent:
            child = await parent.supervise(Failing)
            for _ in range(20):
                await child.tell(Fail())
                assert await child.ask(Ping(), timeout=BOUND) == 1
            assert _alive() == 1  # the one running now
        del parent, child
    finally:
        logging.disable(logging.NOTSET)
    letters = dead_letters.of(reason="failed")
    assert len(letters) == 20
    error = letters[-1].error
    assert error is not None
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert 'raise RuntimeError("failed on purpose") from error' in printed
    assert 'raise KeyError("cause")' in printed  # the cause's traceback too
    assert _alive() == 0


@pytest.mark.asyncio
async def test_a_resumed_or_stopped_actor_is_not_kept_alive_by_its_records() -> None:
    logging.disable(logging.WARNING)
    try:
        parent = Parent()
        async with parent:
            resumed = await parent.supervise(Failing, on_failure={RuntimeError: "resume"})
            await resumed.tell(Fail())
            await resumed.tell(Fail())
            assert await resumed.ask(Ping(), timeout=BOUND) == 1
            await parent.stop_child(resumed)
        del parent, resumed
        alone = Failing()  # not supervised: the failure stops it
        ref = await alone.start()
        await ref.tell(Fail())
        with pytest.raises(ActorStopped):
            await ref.ask(Ping(), timeout=BOUND)
        task = task_of(alone)
        assert task is not None
        await asyncio.wait([task], timeout=BOUND)  # done, and its done callbacks run next
        await asyncio.sleep(0)
        # Not `await alone`: re-raised, the error's traceback gains the awaiting frames, and
        # `Actor.wait`'s holds the actor.
        assert isinstance(task.exception(), RuntimeError)
        del alone, ref, task
    finally:
        logging.disable(logging.NOTSET)
    assert len(dead_letters.of(reason="failed")) == 3
    assert _alive() == 0


@pytest.mark.asyncio
async def test_an_error_handed_on_by_a_running_task_leaves_that_task_running() -> None:
    """The frame that caught an error and handed it on may still be suspended: clearing it would
    close its coroutine (before Python 3.13), so it is left as it is."""
    handed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    go_on = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("handed on")

    async def worker() -> str:
        try:
            await fail()
        except RuntimeError as error:
            handed.set_result(error)
        await go_on.wait()
        return "still running"

    task = asyncio.create_task(worker())
    error = await bounded(handed)
    dead_letters.record(Fail(), "relay", "failed", error)
    go_on.set()
    assert await bounded(task) == "still running"
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert 'raise RuntimeError("handed on")' in printed


class Answering(Actor[Ping]):
    """Fails every ask it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.state = bytearray(100_000)
        INCARNATIONS.add(self)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        raise RuntimeError("cannot answer")


class Asker(Actor[Fail]):
    def __init__(self, asked: ActorRef[Ping]) -> None:
        super().__init__()
        self.asked = asked

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        await self.asked.ask(Ping(), timeout=BOUND)


@pytest.mark.asyncio
async def test_a_failed_asker_does_not_keep_the_actor_it_asked_alive() -> None:
    """The asker's error comes from the answering actor's mainloop, which caught it and goes on:
    the error leaves that frame behind, or the asker's dead letter would keep it (and its actor)
    alive once it ended."""
    answering = Answering()
    answering_ref = await answering.start()

    asker = Asker(answering_ref)
    ref = await asker.start()
    await ref.tell(Fail())
    task = task_of(asker)
    assert task is not None
    await asyncio.wait([task], timeout=BOUND)
    assert isinstance(task.exception(), RuntimeError)
    await bounded(answering.stop())
    answering_task = task_of(answering)
    assert answering_task is not None
    await asyncio.wait([answering_task], timeout=BOUND)
    await asyncio.sleep(0)  # its done callbacks run
    del answering, answering_ref, asker, ref, task, answering_task
    error = dead_letters.of(reason="failed")[0].error
    assert error is not None
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert 'raise RuntimeError("cannot answer")' in printed
    assert _alive() == 0


def _feeding() -> Generator[int, str, None]:
    """A generator that records the errors it catches and goes on (any task may feed it)."""
    fed = 0
    while True:
        item = yield fed
        try:
            if item == "bad":
                raise ValueError(item)
            fed += 1
        except ValueError as error:
            dead_letters.record(item, "feeding", "failed", error)


@pytest.mark.asyncio
async def test_a_generator_that_records_an_error_is_not_closed_when_its_feeder_ends() -> None:
    """Its frame runs when it records: it is not the feeding task's own frame, so it is not
    cleared when that task ends (it would be suspended then, and clearing it closes it)."""
    feeding = _feeding()
    next(feeding)

    async def feed(item: str) -> int:
        return feeding.send(item)

    await bounded(asyncio.create_task(feed("bad")))
    await asyncio.sleep(0)  # the task's done callbacks run
    assert feeding.send("good") == 1


@pytest.mark.asyncio
async def test_awaiting_a_failed_actor_does_not_make_its_record_keep_it() -> None:
    """`await actor` and `async with actor` raise its error again: their frames join its
    traceback, and held the actor."""
    logging.disable(logging.WARNING)
    try:
        for _ in range(3):
            awaited = Failing()
            await (await awaited.start()).tell(Fail())
            with pytest.raises(RuntimeError, match="failed on purpose"):
                await bounded(awaited.wait())
            entered = Failing()
            with pytest.raises(RuntimeError, match="failed on purpose"):  # noqa: PT012
                async with entered as ref:
                    await ref.tell(Fail())
                    await _stopped(entered)
        del awaited, entered, ref
    finally:
        logging.disable(logging.NOTSET)
    assert len(dead_letters.of(reason="failed")) == 6
    assert _alive() == 0


async def _stopped(actor: Actor[Any]) -> None:
    """Wait until ``actor``'s task is done, without raising its error."""
    task = task_of(actor)
    assert task is not None
    await asyncio.wait([task], timeout=BOUND)


class Escalating(Actor[Ping]):
    """Supervises a `Failing` child whose errors it escalates."""

    supervisor_strategy = SupervisorStrategy(max_restarts=1000, within=60.0)
    child: ActorRef[Fail | Ping] | None = None

    def __init__(self) -> None:
        super().__init__()
        INCARNATIONS.add(self)

    async def mainloop_setup(self) -> None:
        Escalating.child = await self.supervise(Failing, on_failure={RuntimeError: "escalate"})

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 1


@pytest.mark.asyncio
async def test_an_escalated_error_does_not_make_its_record_keep_the_parent() -> None:
    logging.disable(logging.WARNING)
    try:
        parent = Parent()
        async with parent:
            escalating = await parent.supervise(Escalating)
            for _ in range(3):
                assert await escalating.ask(Ping(), timeout=BOUND) == 1
                assert Escalating.child is not None
                await Escalating.child.tell(Fail())
            assert await escalating.ask(Ping(), timeout=BOUND) == 1
        del parent, escalating
        Escalating.child = None
    finally:
        logging.disable(logging.NOTSET)
    # Each Fail went to the child of that moment: failed, or told to one already replaced.
    assert dead_letters.of(reason="failed")
    assert _alive() == 0


class Grouping(Failing):
    """Fails in a task of a task group: its error comes in an exception group."""

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
            group.create_task(self.part())

    async def part(self) -> None:
        raise RuntimeError("failed in a part")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="task groups: Python 3.11+")
@pytest.mark.asyncio
async def test_errors_in_an_exception_group_do_not_keep_their_incarnation() -> None:
    logging.disable(logging.WARNING)
    try:
        parent = Parent()
        async with parent:
            child = await parent.supervise(Grouping)
            for _ in range(3):
                await child.tell(Fail())
                assert await child.ask(Ping(), timeout=BOUND) == 1
        del parent, child
    finally:
        logging.disable(logging.NOTSET)
    assert len(dead_letters.of(reason="failed")) == 3
    assert _alive() == 0
