"""Promise 5, lifecycle: start/stop/async with/await, the state properties, EndMainLoop, the setup
and teardown hooks, children and supervision by the parent, failures of told messages, plain
Reference inboxes, identity and logging."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from typing import Any

import pytest

from actorio import (
    Actor,
    ActorRef,
    ActorStopped,
    DataMessage,
    EndMainLoop,
    Message,
    NoReply,
    Reference,
    handles,
)
from actorio.testing import ActorTestKit, TestProbe


class Boom(Exception):
    pass


class Ping(Message[int]):
    n: int = 0


class Note(Message):
    text: str


class End(Message):
    pass


class Die(Message):
    pass


class Park(Message):
    pass


class StopSelf(Message[str]):
    pass


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


class Basic(Actor):
    """Answers Ping, records Notes, ends on End, fails on Die, parks on Park, stops itself on StopSelf."""

    def __init__(self, identifier: str | None = None) -> None:
        super().__init__(identifier=identifier)
        self.notes: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.torn_down = asyncio.Event()
        self.setup_calls: list[asyncio.Task[Any] | None] = []
        self.teardown_calls: list[asyncio.Task[Any] | None] = []
        self.log: list[str] = []

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.setup_calls.append(asyncio.current_task())
        self.log.append("setup")

    async def mainloop_teardown(self) -> None:
        self.teardown_calls.append(asyncio.current_task())
        self.log.append("teardown")
        await super().mainloop_teardown()
        self.torn_down.set()

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        self.log.append(f"ping-{msg.n}")
        return msg.n

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.notes.append(msg.text)

    @handles(End)
    async def end(self, msg: End) -> None:
        raise EndMainLoop()

    @handles(Die)
    async def die(self, msg: Die) -> None:
        raise Boom(f"{self.identifier} failed")

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.entered.set()
        await self.release.wait()
        self.log.append("park-done")

    @handles(StopSelf)
    async def stop_self(self, msg: StopSelf) -> str:
        # Called from the actor's own handler, stop() returns at once (no bound needed: a bound
        # would run it in another task, which must wait for this handler).
        await self.stop()
        self.log.append("after-stop-in-handler")
        return "stopping"


# -- start, stop, properties ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_started_running_stopped_through_the_lifecycle() -> None:
    """Promise 5: started/running/stopped before start, while running and after stop."""
    actor = Basic()
    assert (actor.started, actor.running, actor.stopped) == (False, False, False)
    ref = await actor.start()
    assert (actor.started, actor.running, actor.stopped) == (True, True, False)
    assert await bounded(ref.ask(Ping(n=1))) == 1
    await bounded(actor.stop())
    assert (actor.started, actor.running, actor.stopped) == (True, False, True)


@pytest.mark.asyncio
async def test_start_returns_the_actor_ref_and_cannot_run_twice() -> None:
    """Promise 5: start() returns the actor's ActorRef; starting again raises RuntimeError."""
    actor = Basic()
    ref = await actor.start()
    assert isinstance(ref, ActorRef)
    assert ref is actor.reference
    with pytest.raises(RuntimeError):
        await actor.start()
    await bounded(actor.stop())
    with pytest.raises(RuntimeError):
        await actor.start()


@pytest.mark.asyncio
async def test_async_with_gives_the_actor_ref_and_stops_at_exit() -> None:
    """Promise 5: ``async with Actor() as ref``: ref is the ActorRef; the actor stops at exit."""
    actor = Basic()
    async with actor as ref:
        assert isinstance(ref, ActorRef)
        assert ref is actor.reference
        assert actor.running
        assert await bounded(ref.ask(Ping(n=3))) == 3
    assert (actor.running, actor.stopped) == (False, True)
    assert actor.torn_down.is_set()


@pytest.mark.asyncio
async def test_await_actor_returns_none_after_stop() -> None:
    """Promise 5: ``await actor`` returns None once a stopped actor's mainloop is over."""
    actor = Basic()
    await actor.start()
    await bounded(actor.stop())
    assert await bounded(actor.wait()) is None
    await actor


@pytest.mark.asyncio
async def test_await_actor_waits_for_the_end() -> None:
    """Promise 5: ``await actor`` waits until the mainloop ends (here by EndMainLoop)."""
    actor = Basic()
    ref = await actor.start()
    waiter = asyncio.ensure_future(actor.wait())
    assert await bounded(ref.ask(Ping(n=1))) == 1
    assert not waiter.done()
    await ref.tell(End())
    assert await bounded(waiter) is None


@pytest.mark.asyncio
async def test_await_before_start_raises_runtime_error() -> None:
    """Promise 5: waiting on an actor that was never started is an error, not a hang."""
    with pytest.raises(RuntimeError):
        await bounded(Basic().wait())


@pytest.mark.asyncio
async def test_run_until_stopped_starts_and_waits() -> None:
    """Promise 5: run_until_stopped() starts the actor and returns when it stops."""
    actor = Basic()
    runner = asyncio.ensure_future(actor.run_until_stopped())
    assert await bounded(actor.reference.ask(Ping(n=7))) == 7
    assert actor.running
    assert not runner.done()
    await actor.reference.tell(End())
    assert await bounded(runner) is None
    assert actor.stopped


@pytest.mark.asyncio
async def test_end_main_loop_from_a_told_handler_ends_cleanly() -> None:
    """Promise 5: ``raise EndMainLoop()`` ends the actor cleanly: ``await actor`` returns None, the
    messages behind it are not handled, teardown runs."""
    actor = Basic()
    ref = await actor.start()
    await ref.tell(Note(text="before"))
    await ref.tell(End())
    await ref.tell(Note(text="after"))
    assert await bounded(actor.wait()) is None
    assert actor.notes == ["before"]
    assert actor.stopped
    assert actor.torn_down.is_set()


@pytest.mark.asyncio
async def test_stop_finishes_the_message_being_handled() -> None:
    """Promise 5: stop() waits for the handler in progress to finish; queued messages are dropped."""
    actor = Basic()
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.entered.wait())
    await ref.tell(Note(text="queued"))
    stopper = asyncio.ensure_future(actor.stop())
    async with Basic() as other:
        # An ask to another actor gives the loop several turns: a barrier that is not a sleep.
        assert await bounded(other.ask(Ping(n=1))) == 1
    assert not stopper.done()
    assert actor.running
    actor.release.set()
    await bounded(stopper)
    assert actor.log[-2:] == ["park-done", "teardown"]
    assert actor.notes == []


@pytest.mark.asyncio
async def test_stop_does_not_raise_the_actors_failure_and_stopping_twice_is_harmless(
    actor_kit: ActorTestKit,
) -> None:
    """Promise 5: stop() on a failed actor returns; ``await actor`` is what raises."""
    actor = Basic()
    ref = await actor_kit.spawn(actor)
    await ref.tell(Die())
    await TestProbe().expect_terminated(ref, error=Boom)
    await bounded(actor.stop())
    await bounded(actor.stop())
    with pytest.raises(Boom):
        await actor


@pytest.mark.asyncio
async def test_stop_from_inside_a_handler_ends_after_that_handler() -> None:
    """Promise 5: ``await self.stop()`` in a handler returns at once; the actor ends after that
    handler (its reply delivered), and queued messages are not handled."""
    actor = Basic()
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(actor.entered.wait())
    asked = asyncio.ensure_future(ref.ask(StopSelf()))
    # Tasks start in creation order: once this tell is done, the ask ahead of it is queued too.
    await bounded(asyncio.ensure_future(ref.tell(Note(text="queued"))))
    assert not asked.done()
    actor.release.set()
    assert await bounded(asked) == "stopping"
    assert await bounded(actor.wait()) is None
    assert actor.log[-2:] == ["after-stop-in-handler", "teardown"]
    assert actor.notes == []
    assert actor.stopped


# -- setup and teardown -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_setup_and_teardown_run_once_each_in_the_actor_task() -> None:
    """Promise 5: mainloop_setup/mainloop_teardown (overridden with super()) run once each, in the
    actor's task, before the first message and after the last."""
    actor = Basic()
    ref = await actor.start()
    assert await bounded(ref.ask(Ping(n=1))) == 1
    assert await bounded(ref.ask(Ping(n=2))) == 2
    await bounded(actor.stop())
    await bounded(actor.stop())
    assert actor.setup_calls == [actor._actor_task]
    assert actor.teardown_calls == [actor._actor_task]
    assert actor.log == ["setup", "ping-1", "ping-2", "teardown"]


@pytest.mark.asyncio
async def test_teardown_runs_after_a_failure(actor_kit: ActorTestKit) -> None:
    """Promise 5: mainloop_teardown runs once even when the actor failed."""
    actor = Basic()
    ref = await actor_kit.spawn(actor)
    await ref.tell(Die())
    await TestProbe().expect_terminated(ref, error=Boom)
    assert actor.teardown_calls == [actor._actor_task]


# -- failures of told messages ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_exception_handling_a_told_message_stops_the_actor_with_it() -> None:
    """Promise 5: an exception while handling a told message stops the actor; ``await actor``
    raises that error (same type)."""
    actor = Basic()
    ref = await actor.start()
    await ref.tell(Die())
    await ref.tell(Note(text="never"))
    with pytest.raises(Boom, match="failed"):
        await bounded(actor.wait())
    assert actor.stopped
    assert not actor.running
    assert actor.notes == []


@pytest.mark.asyncio
async def test_async_with_reraises_the_actors_failure_when_the_block_did_not_raise() -> None:
    """Promise 5: leaving ``async with`` re-raises the actor's own failure."""
    actor = Basic()

    async def block() -> None:
        async with actor as ref:
            await ref.tell(Die())
            await bounded(actor.torn_down.wait())

    with pytest.raises(Boom):
        await block()
    assert actor.stopped


@pytest.mark.asyncio
async def test_async_with_keeps_the_blocks_own_exception() -> None:
    """Promise 5: when the block raised, that exception propagates, not the actor's."""
    actor = Basic()

    async def block() -> None:
        async with actor as ref:
            await ref.tell(Die())
            await bounded(actor.torn_down.wait())
            raise KeyError("block")

    with pytest.raises(KeyError):
        await block()
    with pytest.raises(Boom):
        await actor


@pytest.mark.asyncio
async def test_async_with_reads_the_actors_failure_when_the_block_raised() -> None:
    """When the block raised, the actor's failure (logged when it failed) is read all the same:
    asyncio does not log it again as "never retrieved" when the actor is freed."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    async def block() -> None:
        actor = Basic()
        async with actor as ref:
            await ref.tell(Die())
            await bounded(actor.torn_down.wait())
            raise KeyError("block")

    try:
        with contextlib.suppress(KeyError):
            await block()
        gc.collect()  # the actor and its task, freed
    finally:
        loop.set_exception_handler(None)
    assert [context["message"] for context in reported] == []


@pytest.mark.asyncio
async def test_every_error_of_an_actor_is_logged_once_whatever_its_async_with_block_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A teardown error ends the actor's task and is logged where it happens, with its
    traceback; a handler's failure is logged where it happens too. When the ``async with`` block
    raised an error of its own (which goes on), neither is logged a second time."""

    class BadTeardown(Basic):
        async def mainloop_teardown(self) -> None:
            await super().mainloop_teardown()
            raise RuntimeError("teardown failed")

    async def failing_then_raising() -> None:
        async with Basic() as ref:
            await ref.tell(Die())
            with contextlib.suppress(ActorStopped):
                await ref.ask(Ping())  # unanswered: the actor failed on Die first
            raise KeyError("block")

    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        with caplog.at_level(logging.ERROR, logger="actorio.actor"):
            with pytest.raises(KeyError):
                async with BadTeardown():
                    raise KeyError("block")
            with pytest.raises(KeyError):
                await failing_then_raising()
            gc.collect()
    finally:
        loop.set_exception_handler(None)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    said = ["failed in its teardown", "failed"]
    assert [r.getMessage().split(" ", 1)[1] for r in errors] == said
    assert [type(r.exc_info[1]).__name__ for r in errors if r.exc_info] == ["RuntimeError", "Boom"]
    assert [context["message"] for context in reported] == []  # no "never retrieved"


# -- children ---------------------------------------------------------------------------------


class Parent(Basic):
    """Registers children on demand and records handle_child_stopped calls."""

    def __init__(self, record_only: bool = False) -> None:
        super().__init__()
        self.record_only = record_only
        self.child_stops: list[tuple[Actor[Any], BaseException | None, asyncio.Task[Any] | None]] = []
        self.child_stopped = asyncio.Event()

    async def adopt(self, child: Actor[Any]) -> ActorRef[Any]:
        return await self.register_child(child)

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        self.child_stops.append((child, task.exception(), asyncio.current_task()))
        self.child_stopped.set()
        if not self.record_only:
            await super().handle_child_stopped(child, task)


class Adopt(Message[ActorRef[Any]]):
    child: Any


class Adopter(Parent):
    @handles(Adopt)
    async def adopt_message(self, msg: Adopt) -> ActorRef[Any]:
        return await self.adopt(msg.child)


@pytest.mark.asyncio
async def test_register_child_starts_it_and_returns_its_ref() -> None:
    """Promise 5: register_child(actor) starts the child and returns its ActorRef."""
    parent = Adopter()
    child = Basic()
    async with parent as ref:
        child_ref = await bounded(ref.ask(Adopt(child=child)))
        assert isinstance(child_ref, ActorRef)
        assert child_ref is child.reference
        assert child.running
        assert parent.children == [child]
        assert await bounded(child_ref.ask(Ping(n=4))) == 4
    assert child.stopped


@pytest.mark.asyncio
async def test_handle_child_stopped_runs_in_the_parents_task() -> None:
    """Promise 5: handle_child_stopped(child, task) runs inside the parent's loop, with the
    child's mainloop task."""
    parent = Adopter(record_only=True)
    child = Basic()
    async with parent as ref:
        child_ref = await bounded(ref.ask(Adopt(child=child)))
        await child_ref.tell(End())
        await bounded(parent.child_stopped.wait())
        assert await bounded(ref.ask(Ping(n=1))) == 1
    [(stopped_child, error, task)] = parent.child_stops
    assert stopped_child is child
    assert error is None
    assert task is parent._actor_task
    assert parent.children == []


@pytest.mark.asyncio
async def test_child_failure_is_seen_by_the_parents_handle_child_stopped(actor_kit: ActorTestKit) -> None:
    """Promise 5: a child that fails on a told message stops with that error; the parent's
    handle_child_stopped sees it in task.exception(); an overriding parent carries on."""
    parent = Adopter(record_only=True)
    child = Basic()
    ref = await actor_kit.spawn(parent)
    child_ref = await bounded(ref.ask(Adopt(child=child)))
    await child_ref.tell(Die())
    await bounded(parent.child_stopped.wait())
    assert await bounded(ref.ask(Ping(n=2))) == 2
    assert parent.running
    [(stopped_child, error, _)] = parent.child_stops
    assert stopped_child is child
    assert isinstance(error, Boom)
    assert await TestProbe().expect_terminated(child_ref, error=Boom) is error


@pytest.mark.asyncio
async def test_default_handle_child_stopped_reraises_in_the_parent(actor_kit: ActorTestKit) -> None:
    """Promise 5: by default the child's error is re-raised in the parent: the parent fails with it."""
    parent = Adopter()
    child = Basic()
    ref = await actor_kit.spawn(parent)
    child_ref = await bounded(ref.ask(Adopt(child=child)))
    await child_ref.tell(Die())
    probe = TestProbe()
    error = await probe.expect_terminated(ref, error=Boom)
    assert str(error) == f"{child.identifier} failed"
    assert parent.stopped
    assert await probe.expect_terminated(child_ref, error=Boom) is error


@pytest.mark.asyncio
async def test_children_stop_in_reverse_start_order_when_the_parent_stops() -> None:
    """Promise 5: the parent's stop stops its children in reverse start order."""
    order: list[str] = []

    class Child(Actor):
        async def mainloop_teardown(self) -> None:
            order.append(self.identifier)
            await super().mainloop_teardown()

    class Family(Actor):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            for name in ("first", "second", "third"):
                await self.register_child(Child(identifier=name))

    family = Family()
    await family.start()
    await bounded(family.stop())
    assert order == ["third", "second", "first"]


# -- Reference, identity, logging -------------------------------------------------------------


@pytest.mark.asyncio
async def test_reference_is_a_plain_inbox() -> None:
    """Promise 5: ``Reference()`` receives what it is told in ``inbox``, in order."""
    me = Reference()
    first = Note(text="one")
    await me.tell(first)
    me.tell_nowait(Note(text="two"))
    assert await bounded(me.inbox.get()) is first
    got = await bounded(me.inbox.get())
    assert got.text == "two"
    assert me
    assert Reference(identifier="mine").identifier == "mine"
    assert Reference().identifier != Reference().identifier


@pytest.mark.asyncio
async def test_reference_receives_an_actors_replies() -> None:
    """Promise 5: a Reference given as sender gets the actor's ``message.reply(value)``."""

    class Shout(Message[str]):
        text: str

    class Replier(Actor):
        @handles(Shout)
        async def shout(self, msg: Shout) -> NoReply:
            return await msg.reply(msg.text.upper())

    me = Reference()
    async with Replier() as ref:
        await ref.tell(Shout(text="hello", sender=me))
        reply = await bounded(me.inbox.get())
    assert isinstance(reply, DataMessage)
    assert reply.data == "HELLO"


def test_default_identifier_is_class_name_and_serial() -> None:
    """Promise 5: the default identifier is ``ClassName-<n>``, distinct per actor."""
    first, second = Basic(), Basic()
    assert re.fullmatch(r"Basic-\d+", first.identifier)
    assert re.fullmatch(r"Basic-\d+", second.identifier)
    assert first.identifier != second.identifier
    assert first.reference.identifier == first.identifier


def test_identifier_can_be_given() -> None:
    """Promise 5: ``identifier=`` names the actor and its reference."""
    actor = Basic(identifier="bob")
    assert actor.identifier == "bob"
    assert actor.reference.identifier == "bob"


def test_logger_records_carry_the_actor_identifier(caplog: pytest.LogCaptureFixture) -> None:
    """Promise 5: ``self.logger`` logs under actorio with the actor's identifier attached."""
    actor = Basic(identifier="logged")
    with caplog.at_level(logging.INFO):
        actor.logger.info("hello %s", "there")
    [record] = [r for r in caplog.records if r.getMessage() == "hello there"]
    assert record.name.startswith("actorio")
    assert record.__dict__["actor"] == "logged"
    assert actor.logger is actor.logger


@pytest.mark.asyncio
async def test_tell_to_a_stopped_actor_is_a_dead_letter_not_an_error(actor_kit: ActorTestKit) -> None:
    """Promise 5: a reference stays valid after its actor stops; a tell to it does not raise, and
    the message is a dead letter."""
    actor = Basic()
    ref = await actor_kit.spawn(actor)
    await bounded(actor.stop())
    await ref.tell(Note(text="late"))
    ref.tell_nowait(Note(text="late"))
    assert actor.notes == []
    letters = actor_kit.take_dead_letters()
    assert [(letter.recipient, letter.reason) for letter in letters] == [(actor.identifier, "stopped")] * 2
    assert [letter.message.text for letter in letters if isinstance(letter.message, Note)] == ["late"] * 2
