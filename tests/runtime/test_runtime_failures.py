"""Promise 4, failures at the asker: a handler's exception (with its traceback), UnhandledMessage,
ActorStopped for a stopped actor or one that stops first, and timeouts. An ask never hangs
because something failed, and an actor serving an ask carries on after its handler fails."""

from __future__ import annotations

import asyncio
import gc
import traceback
import weakref
from typing import Any

import pytest

from actorio import (
    Actor,
    ActorioException,
    ActorRef,
    ActorStopped,
    EndMainLoop,
    Message,
    UnhandledMessage,
    ask,
    dead_letters,
    handles,
)
from tests.support import await_a_cancelled_task


class Boom(Exception):
    pass


class Fail(Message[int]):
    pass


class Get(Message[int]):
    n: int = 0


class Park(Message[str]):
    pass


class Finish(Message[str]):
    pass


class Unknown(Message[int]):
    pass


class Die(Message):
    pass


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


class Worker(Actor):
    """Fails on Fail, parks on Park until ``release`` is set, ends on Finish."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.handled: list[int] = []

    @handles(Fail)
    async def failing_handler(self, msg: Fail) -> int:
        raise Boom("handler failed")

    @handles(Get)
    async def get(self, msg: Get) -> int:
        self.handled.append(msg.n)
        return msg.n

    @handles(Park)
    async def park(self, msg: Park) -> str:
        self.entered.set()
        await self.release.wait()
        return "released"

    @handles(Finish)
    async def finish(self, msg: Finish) -> str:
        raise EndMainLoop()

    @handles(Die)
    async def die(self, msg: Die) -> None:
        raise Boom("told message failed")


# -- a handler's exception --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_handler_exception_is_raised_at_the_asker_with_its_type() -> None:
    """Promise 4: an exception in a handler serving an ask is raised at the asker, same type."""
    async with Worker() as ref:
        with pytest.raises(Boom, match="handler failed"):
            await bounded(ref.ask(Fail()))
        with pytest.raises(Boom):
            await bounded(ask(ref, Fail(), timeout=2))


@pytest.mark.asyncio
async def test_handler_exception_traceback_includes_the_handler_frame() -> None:
    """Promise 4: the error raised at the asker carries the handler's frame in its traceback."""
    async with Worker() as ref:
        with pytest.raises(Boom) as excinfo:
            await bounded(ref.ask(Fail()))
    names = [frame.name for frame in traceback.extract_tb(excinfo.value.__traceback__)]
    assert "failing_handler" in names


@pytest.mark.asyncio
async def test_actor_carries_on_after_a_handler_fails_serving_an_ask() -> None:
    """Promise 4: after a failed ask, the actor is still running and answers the next ask."""
    actor = Worker()
    async with actor as ref:
        for n in range(3):
            with pytest.raises(Boom):
                await bounded(ref.ask(Fail()))
            assert await bounded(ref.ask(Get(n=n))) == n
        assert actor.running
        assert not actor.stopped


# -- UnhandledMessage -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ask_with_no_handler_raises_unhandled_message_and_the_actor_carries_on() -> None:
    """Promise 4: a message with no handler raises UnhandledMessage at the asker; later asks work."""
    actor = Worker()
    async with actor as ref:
        with pytest.raises(UnhandledMessage) as excinfo:
            await bounded(ref.ask(Unknown()))
        assert isinstance(excinfo.value, ActorioException)
        assert isinstance(excinfo.value.message, Unknown)
        assert await bounded(ref.ask(Get(n=1))) == 1
        assert actor.running


@pytest.mark.asyncio
async def test_told_message_with_no_handler_leaves_the_actor_running() -> None:
    """Promise 4: a told message with no handler is logged; the actor carries on."""
    actor = Worker()
    async with actor as ref:
        await ref.tell(Unknown())
        ref.tell_nowait(Unknown())
        assert await bounded(ref.ask(Get(n=2))) == 2
        assert actor.running
    await bounded(actor.wait())


# -- ActorStopped -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ask_to_a_stopped_actor_raises_actor_stopped_at_once() -> None:
    """Promise 4: asking an actor that was stopped raises ActorStopped immediately."""
    actor = Worker()
    ref = await actor.start()
    await bounded(actor.stop())
    with pytest.raises(ActorStopped) as excinfo:
        await bounded(ref.ask(Get()))
    assert excinfo.value.identifier == actor.identifier
    assert isinstance(excinfo.value, ActorioException)
    with pytest.raises(ActorStopped):
        await bounded(ask(actor, Get()))


@pytest.mark.asyncio
async def test_ask_to_an_actor_that_ended_itself_raises_actor_stopped() -> None:
    """Promise 4: after EndMainLoop ended an actor, an ask raises ActorStopped at once."""
    actor = Worker()
    ref = await actor.start()
    await ref.tell(Finish())
    await bounded(actor.wait())
    with pytest.raises(ActorStopped):
        await bounded(ref.ask(Get()))


@pytest.mark.asyncio
async def test_ask_to_an_actor_stopped_before_start_raises_actor_stopped() -> None:
    """Promise 4: an actor stopped before it ever started refuses asks with ActorStopped."""
    actor = Worker()
    await bounded(actor.stop())
    assert actor.stopped
    with pytest.raises(ActorStopped):
        await bounded(actor.reference.ask(Get()))


async def _queue_asks_then_stop(actor: Worker, ref: ActorRef[Any]) -> tuple[list[asyncio.Task[Any]], Any]:
    """With ``actor`` parked in a handler: queue three asks, then call stop() (which puts its
    signal ahead of them). Returns the ask tasks and the stop task, once both are queued."""
    asks = [asyncio.ensure_future(ref.ask(Get(n=n))) for n in range(3)]
    stopping = asyncio.Event()

    async def stop() -> None:
        stopping.set()
        await actor.stop()

    stopper = asyncio.ensure_future(stop())
    # Tasks start in creation order: once the stopper has run, the asks are queued too.
    await bounded(stopping.wait())
    assert not any(task.done() for task in asks)
    return asks, stopper


@pytest.mark.asyncio
async def test_asks_queued_when_the_actor_stops_fail_with_actor_stopped() -> None:
    """Promise 4: asks still queued when the actor stops fail at once with ActorStopped, and the
    message being handled is finished."""
    actor = Worker()
    ref = await actor.start()
    parked = asyncio.ensure_future(ref.ask(Park()))
    await bounded(actor.entered.wait())
    asks, stopper = await _queue_asks_then_stop(actor, ref)
    actor.release.set()
    results = await bounded(asyncio.gather(*asks, return_exceptions=True))
    assert [type(result) for result in results] == [ActorStopped] * 3
    assert await bounded(parked) == "released"
    await bounded(stopper)
    assert actor.handled == []
    await bounded(actor.wait())


@pytest.mark.asyncio
async def test_stop_with_timeout_fails_the_parked_ask_and_the_queued_ones() -> None:
    """Promise 4: stop(timeout=...) cancels a handler still running; the ask it served and the
    asks queued behind it all fail with ActorStopped instead of hanging."""
    actor = Worker()
    ref = await actor.start()
    parked = asyncio.ensure_future(ref.ask(Park()))
    await bounded(actor.entered.wait())
    asks = [asyncio.ensure_future(ref.ask(Get(n=n))) for n in range(3)]
    await bounded(actor.stop(timeout=0.01))
    results = await bounded(asyncio.gather(parked, *asks, return_exceptions=True))
    assert [type(result) for result in results] == [ActorStopped] * 4
    assert actor.stopped
    assert not actor.running
    assert actor.handled == []
    await bounded(actor.wait())


@pytest.mark.asyncio
async def test_asks_queued_behind_a_failing_told_message_fail_with_actor_stopped() -> None:
    """Promise 4: an actor that fails on a told message fails the asks queued behind it."""
    actor = Worker()
    ref = await actor.start()
    parked = asyncio.ensure_future(ref.ask(Park()))
    await bounded(actor.entered.wait())
    await ref.tell(Die())
    asks = [asyncio.ensure_future(ref.ask(Get(n=n))) for n in range(3)]
    actor.release.set()
    assert await bounded(parked) == "released"
    results = await bounded(asyncio.gather(*asks, return_exceptions=True))
    assert [type(result) for result in results] == [ActorStopped] * 3
    with pytest.raises(Boom):
        await bounded(actor.wait())


@pytest.mark.asyncio
async def test_an_actor_that_failed_says_why_to_the_asks_it_could_not_answer() -> None:
    """ActorStopped's ``reason`` (and ``__cause__``) is the exception the actor failed with: for
    the asks queued behind the failure, the ones held without a reply, and the ones made after
    it stopped. A clean stop gives none. The text stays the same (it may go to a remote asker)."""

    class FailsAtSetup(Worker):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            await self.release.wait()
            raise Boom("setup failed")

    actor = FailsAtSetup()
    ref = await actor.start()
    queued = asyncio.ensure_future(ref.ask(Get(n=1)))
    await asyncio.sleep(0)
    actor.release.set()
    with pytest.raises(ActorStopped) as stopped:
        await bounded(queued)
    assert type(stopped.value.reason) is Boom
    assert stopped.value.__cause__ is stopped.value.reason
    assert str(stopped.value) == f"actor {ref.identifier} stopped before answering Get"
    with pytest.raises(Boom):
        await bounded(actor.wait())
    with pytest.raises(ActorStopped) as later:
        await ref.ask(Get(n=2))
    assert type(later.value.reason) is Boom
    assert "Boom: setup failed" in "".join(traceback.format_exception(later.value))

    class HoldsThenFails(Holder):
        async def handle_message(self, message: Any) -> Any:
            if isinstance(message, Die):
                raise Boom("told message failed")
            await super().handle_message(message)

    holder = HoldsThenFails()
    held_ref = await holder.start()
    held = asyncio.ensure_future(held_ref.ask(Get()))
    await bounded(holder.holding.wait())
    await held_ref.tell(Die())
    with pytest.raises(ActorStopped) as abandoned:
        await bounded(held)
    assert type(abandoned.value.reason) is Boom

    clean = Worker()
    clean_ref = await clean.start()
    await bounded(clean.stop())
    with pytest.raises(ActorStopped) as after_stop:
        await clean_ref.ask(Get())
    assert after_stop.value.reason is None
    assert after_stop.value.__cause__ is None


@pytest.mark.asyncio
async def test_asks_queued_behind_end_main_loop_fail_with_actor_stopped() -> None:
    """Promise 4: asks queued behind a told message whose handler raises EndMainLoop fail at once."""
    actor = Worker()
    ref = await actor.start()
    parked = asyncio.ensure_future(ref.ask(Park()))
    await bounded(actor.entered.wait())
    await ref.tell(Finish())
    asks = [asyncio.ensure_future(ref.ask(Get(n=n))) for n in range(3)]
    actor.release.set()
    assert await bounded(parked) == "released"
    results = await bounded(asyncio.gather(*asks, return_exceptions=True))
    assert [type(result) for result in results] == [ActorStopped] * 3
    await bounded(actor.wait())


@pytest.mark.asyncio
async def test_end_main_loop_while_serving_an_ask_ends_the_actor_and_fails_the_ask() -> None:
    """Promise 4/5: EndMainLoop raised by a handler serving an ask ends the actor cleanly; the ask,
    left unanswered, fails with ActorStopped (not with the control-flow exception)."""
    actor = Worker()
    ref = await actor.start()
    try:
        with pytest.raises(ActorStopped):
            await bounded(ref.ask(Finish()))
        await bounded(actor.wait())
        assert actor.stopped
    finally:
        await bounded(actor.stop())


class Holder(Actor):
    """The original style, holding the sender without ever replying."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Any] = []
        self.holding = asyncio.Event()

    async def handle_message(self, message: Any) -> Any:
        self.held.append(message.sender)
        self.holding.set()


@pytest.mark.asyncio
async def test_original_style_held_sender_fails_with_actor_stopped_when_the_actor_stops() -> None:
    """Promise 4: handle_message keeps the sender without replying: when the actor stops, the ask
    fails with ActorStopped instead of hanging."""
    actor = Holder()
    ref = await actor.start()
    pending = asyncio.ensure_future(ref.ask(Get()))
    await bounded(actor.holding.wait())
    assert not pending.done()
    await bounded(actor.stop())
    with pytest.raises(ActorStopped):
        await bounded(pending)


class HandsOnToHolder(Actor):
    """Forwards every message to a Holder child, which never replies."""

    def __init__(self, child: Holder) -> None:
        super().__init__()
        self.child = child

    async def handle_message(self, message: Any) -> Any:
        child_ref = await self.register_child(self.child)
        await child_ref.tell(message)


@pytest.mark.asyncio
async def test_handed_on_ask_held_without_reply_fails_when_the_holder_stops() -> None:
    """Promise 4: an ask handed on to an original-style actor that holds the sender and then
    stops fails with ActorStopped: an ask never hangs."""
    child = Holder()
    parent = HandsOnToHolder(child)
    ref = await parent.start()
    pending = asyncio.ensure_future(ref.ask(Get()))
    try:
        await bounded(child.holding.wait())
        await bounded(child.stop())
        with pytest.raises(ActorStopped):
            await bounded(pending)
    finally:
        pending.cancel()
        await bounded(parent.stop())


# -- timeouts ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_timed_out_ask_raises_timeout_error_and_the_actor_carries_on() -> None:
    """Promise 4: an ask whose reply does not come in ``timeout`` raises asyncio.TimeoutError;
    the late reply is dropped and the actor still answers the next ask."""
    actor = Worker()
    async with actor as ref:
        with pytest.raises(
            asyncio.TimeoutError, match=rf"^no reply from {actor.identifier} to Park within 0.01 s$"
        ):
            await ref.ask(Park(), timeout=0.01)
        with pytest.raises(asyncio.TimeoutError):
            await ask(ref, Park(), timeout=0.01)
        actor.release.set()
        assert await bounded(ref.ask(Get(n=5))) == 5
        assert await bounded(ref.ask(Park(), timeout=2)) == "released"


@pytest.mark.asyncio
async def test_a_return_value_for_an_ask_already_over_is_a_late_reply_dead_letter() -> None:
    """The handler's return value for an ask whose asker gave up (a timeout, a cancellation) is
    recorded as a dead letter ``late-reply``, as a late ``msg.reply`` is; one on time is not."""
    actor = Worker()
    async with actor as ref:
        dead_letters.clear()
        with pytest.raises(asyncio.TimeoutError):
            await ref.ask(Park(), timeout=0.01)
        actor.release.set()
        assert await bounded(ref.ask(Get(n=1))) == 1  # the parked handler returned before it
        actor.release.clear()
        actor.entered.clear()
        cancelled = asyncio.ensure_future(ref.ask(Park()))
        await bounded(actor.entered.wait())  # its handler runs
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        actor.release.set()
        assert await bounded(ref.ask(Get(n=5))) == 5  # the second parked handler returned before it
        late = [(d.message, d.reason) for d in dead_letters.records if d.recipient.startswith("ask-")]
        assert late == [("released", "late-reply"), ("released", "late-reply")]
        assert dead_letters.counts == {"late-reply": 2}
    dead_letters.clear()


class ReplyParked(Message[int]):
    """Answered with ``msg.reply``, once `ReplyFirst.release` is set; the handler returns -1."""


class ReplyFirst(Actor[ReplyParked | Get]):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @handles(ReplyParked)
    async def parked(self, msg: ReplyParked) -> int:
        self.entered.set()
        await self.release.wait()
        await msg.reply(7)
        return -1  # not the reply either

    @handles(Get)
    async def get(self, msg: Get) -> int:
        await msg.reply(msg.n)
        return -1  # not the reply: the handler told the sender first


@pytest.mark.asyncio
async def test_a_handler_that_replied_itself_leaves_no_late_reply_for_its_return_value() -> None:
    """A handler that answers with ``msg.reply`` and returns leaves no dead letter for what it
    returned; late, the told reply is the one dead letter ``late-reply``, not its return too."""
    actor = ReplyFirst()
    async with actor as ref:
        dead_letters.clear()
        assert await bounded(ref.ask(Get(n=3))) == 3
        assert dead_letters.counts == {}
        with pytest.raises(asyncio.TimeoutError):
            await ref.ask(ReplyParked(), timeout=0.01)
        actor.release.set()
        assert await bounded(ref.ask(Get(n=5))) == 5  # the parked handler returned before it
        assert [(d.message, d.reason) for d in dead_letters.records] == [(7, "late-reply")]
    dead_letters.clear()


class Cancelled(Message[int]):
    """Its handler awaits a task that was cancelled: ``CancelledError`` comes out of it."""


class AwaitsACancelledTask(Actor[Cancelled | Get]):
    @handles(Cancelled)
    async def cancelled(self, msg: Cancelled) -> int:
        await await_a_cancelled_task()
        return 0

    @handles(Get)
    async def get(self, msg: Get) -> int:
        return msg.n


needs_cancelling = pytest.mark.skipif(
    not hasattr(asyncio.Task, "cancelling"), reason="Task.cancelling is Python 3.11+"
)


@needs_cancelling
@pytest.mark.asyncio
async def test_a_cancelled_error_from_a_handler_serving_an_ask_goes_to_the_asker() -> None:
    """The actor was not cancelled: its handler failed. The asker is told why and the actor
    carries on, as after any failure of a handler serving an ask (it used to end, silently)."""
    async with AwaitsACancelledTask() as ref:
        with pytest.raises(RuntimeError, match="raised CancelledError") as raised:
            await bounded(ref.ask(Cancelled()))
        assert isinstance(raised.value.__cause__, asyncio.CancelledError)
        assert await bounded(ref.ask(Get(n=3))) == 3


@needs_cancelling
@pytest.mark.asyncio
async def test_a_cancelled_error_from_a_handler_of_a_told_message_is_a_failure() -> None:
    """Told, the same error is a failure of the actor (logged, its watchers and supervisor told
    of it), not a cancellation that ``await actor`` raised in a task nobody cancelled."""
    dead_letters.clear()
    actor = AwaitsACancelledTask()
    ref = await actor.start()
    await ref.tell(Cancelled())
    with pytest.raises(RuntimeError, match="raised CancelledError"):
        await bounded(actor.wait())
    assert actor._actor_task is not None
    assert not actor._actor_task.cancelled()
    assert [record.reason for record in dead_letters.records] == ["failed"]


@pytest.mark.asyncio
async def test_an_actor_whose_task_is_cancelled_is_still_cancelled() -> None:
    """Cancelling the actor's task itself is no handler's failure: the task ends cancelled."""
    entered = asyncio.Event()

    class Parks(Actor[Park]):
        @handles(Park)
        async def park(self, msg: Park) -> str:
            entered.set()
            await asyncio.sleep(10)
            return "never"

    actor = Parks()
    ref = await actor.start()
    await ref.tell(Park())
    await bounded(entered.wait())
    assert actor._actor_task is not None
    actor._actor_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(asyncio.shield(actor._actor_task))
    assert actor._actor_task.cancelled()


@needs_cancelling
@pytest.mark.asyncio
async def test_an_idle_actor_keeps_nothing_of_a_handler_that_let_out_a_cancelled_error() -> None:
    """The failure that the asker got held the handler's frame: the first version kept it in
    the mainloop's locals while the actor idled, with all the handler's locals."""
    kept: list[weakref.ref[Any]] = []

    class Big:
        pass

    class Holds(AwaitsACancelledTask):
        @handles(Cancelled)
        async def cancelled(self, msg: Cancelled) -> int:
            big = Big()
            kept.append(weakref.ref(big))
            return await super().cancelled(msg)

    async with Holds() as ref:
        with pytest.raises(RuntimeError, match="raised CancelledError"):
            await bounded(ref.ask(Cancelled()))
        assert await bounded(ref.ask(Get(n=1))) == 1  # idle again since
        gc.collect()
        assert kept[0]() is None


@needs_cancelling
@pytest.mark.asyncio
async def test_the_failure_names_the_message_a_timer_delivered() -> None:
    """Not the timer's internal signal (the first version said ``TimerSignal``)."""

    class Ticks(AwaitsACancelledTask):
        async def mainloop_setup(self) -> None:
            await super().mainloop_setup()
            self.start_timer("tick", Cancelled(), 0)

    actor = Ticks()
    await actor.start()
    with pytest.raises(RuntimeError, match="the handler of Cancelled raised CancelledError"):
        await bounded(actor.wait())
