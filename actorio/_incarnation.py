"""How one incarnation of an actor runs its signals, fails, and ends.

The mainloop (`Actor._actor_mainloop`) handles messages; what it calls on the way out of a
handler that failed, or of the loop itself, is here:

- the signals every actor's dispatch table starts with (`SIGNALS`): stop, system messages,
  input tasks, timer ticks and barriers;
- `failed`: a handler failed on a told message: the dead letter, and the supervised child's
  directive (resume, or end);
- `deliver`: a message that arrived inside a signal (a timer's, a watch notice) to its handler;
- `close`: the incarnation handles no more messages: timers cancelled, held asks failed, and the
  mailbox either handed over to the next incarnation (a restart) or closed; `release`: input
  tasks cancelled and children stopped;
- `RUNNING`, `task_done`, `done_waiter`, `wake_waiters`: a started actor's task is held until it
  is done; `Actor.stop` waits for the mainloop to be over.

A supervised child's decisions (what its end counts as) are pure functions in
``_supervision.py``; its supervisor acts on them in ``_supervisor.py``.
"""

# pyright: reportPrivateUsage=false
# The actor's end reads and writes its framework slots (``_actor_*``): actor and incarnation are
# one unit of the core.

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, cast

from . import _alarms as alarms
from ._ask import AskRef
from ._dead_letters import clear_when_done, dead_letters, forget_locals, shorten
from ._dispatch import Handler, resolve_handler
from ._exceptions import EndMainLoop, UnhandledMessage
from ._inputs import Barrier, InputSignal, run_barrier, run_input
from ._log_limit import LogLimit
from ._mailbox import SYSTEM, Signal, _SystemSignal
from ._supervision import Outcome, directive_on_failure, outcome_of_end
from ._timers import TimerSignal
from ._watch import notify_watchers

if TYPE_CHECKING:
    from ._actor import Actor
    from ._message import Message

__all__ = [
    "RUNNING",
    "SIGNALS",
    "STOP",
    "can_await",
    "close",
    "deliver",
    "done_waiter",
    "failed",
    "outcome_of",
    "release",
    "task_done",
]


RUNNING: set[asyncio.Task[None]] = set()
"""The mainloop task of every started actor, until it is done. asyncio holds tasks by weak
reference only: an idle actor that nobody references any more would be collected while it waits
(its task "destroyed but pending", its teardown never run, its coroutine closed mid-``finally``).
Held here, an actor runs until it is stopped or its loop shuts down (``asyncio.run`` cancels it
and its teardown runs), as an Erlang process or an Akka actor lives until it stops."""


class _StopSignal(Signal):
    """Put ahead of the mailbox by `Actor.stop`: the mainloop ends when it reaches it."""

    __slots__ = ()


STOP = _StopSignal()


def _end_mainloop(actor: Actor[Any], signal: _StopSignal) -> NoReturn:
    # A plain function: it raises at the call, before any coroutine is made.
    raise EndMainLoop()


async def _run_system(actor: Actor[Any], signal: _SystemSignal) -> None:
    mailbox = actor._actor_mailbox
    system = mailbox.system
    try:
        while system:
            item = system.popleft()
            if type(item) is InputSignal:
                await item.run()
            else:
                await deliver(actor, item)
    finally:
        if system and not mailbox.closed:
            mailbox.queued().appendleft(SYSTEM)  # a handler failed (and the actor resumes): go on later


async def _run_timer(actor: Actor[Any], signal: TimerSignal) -> None:
    # Delivered only if the timer is still current for this incarnation: a replaced or cancelled
    # timer's tick, or one of an earlier incarnation, is dropped.
    timers = actor._actor_timers
    if timers is not None and timers.take(signal.timer):
        await deliver(actor, signal.timer.message)


SIGNALS: dict[type, Handler] = {
    _StopSignal: _end_mainloop,
    InputSignal: run_input,
    TimerSignal: _run_timer,
    Barrier: run_barrier,
    _SystemSignal: _run_system,
}
"""What every actor class's dispatch cache starts with."""


async def deliver(actor: Actor[Any], message: Message[Any]) -> None:
    """Handle a message that arrived inside a signal (a timer's, a watch notice); if the handler
    fails, the message is the one `failed` records."""
    cls = type(actor)
    message_type: type = type(message)
    handler = cls._actor_dispatch.get(message_type)
    if handler is None:
        handler = cls._actor_dispatch[message_type] = resolve_handler(
            cls._actor_handlers, message_type, cls._actor_fallback
        )
    try:
        await handler(actor, message)
    except BaseException:
        actor._actor_failing = message
        raise


# -- failures ---------------------------------------------------------------------------------

RESUME_LOG_LIMIT = 10
"""How many "resuming after" warnings the process logs in a minute (a flood of messages that
fail, each resumed, would otherwise log one line each)."""


_resumes = LogLimit(logging.getLogger("actorio.actor"), limit=RESUME_LOG_LIMIT)

RESTART_LOG_LIMIT = 10
"""How many "failed and is restarted" warnings the process logs in a minute for one actor class
(an entity type's failing message, told to many keys, restarts as many activations)."""

_restarts: weakref.WeakKeyDictionary[type, LogLimit] = weakref.WeakKeyDictionary()


def failed(actor: Actor[Any], message: Any, error: Exception) -> bool:
    """A handler failed on a told message (or a signal): record the dead letter; True if the
    actor carries on (a message it has no handler for, or its supervision says to resume)."""
    if isinstance(error, UnhandledMessage):
        unhandled = actor._actor_failing if type(message) in SIGNALS else message
        if error.message is unhandled:
            actor._actor_failing = None
            dead_letters.record(unhandled, actor.identifier, "unhandled", error)
            return True
        # Else another actor's, from a nested ask: a failure of this handler.
    failing = message
    if type(message) in SIGNALS:
        failing, actor._actor_failing = actor._actor_failing, None
    if failing is not None:
        dead_letters.record(failing, actor.identifier, "failed", error)
    else:  # a timer's or an input's handler, or a child's error escalated: no record, but the
        forget_locals(error)  # error may be a child's, which a record holds (as one does)
    record = actor._actor_record
    if record is None:
        return False
    try:
        directive = directive_on_failure(record.decider, error)
    except Exception as fault:  # the decider failed: its supervisor fails with that (escalate)
        record.fault = fault
        directive = "escalate"
    if directive is None:
        return False
    if directive == "resume":
        # The message is a dead letter already (its own log is limited too): one line each, at
        # most RESUME_LOG_LIMIT a minute, with the error cut.
        _resumes.log(logging.WARNING, "%s resuming after %s", actor.identifier, shorten(repr(error)))
        return True
    record.directive = directive
    return False


LATE_ASK_LOG_LIMIT = 10
"""How many "failed serving an ask that is already over" errors the process logs in a minute
(callers timing out while the handler they asked fails: an overload logs one each)."""

_late_asks = LogLimit(logging.getLogger("actorio.actor"), limit=LATE_ASK_LOG_LIMIT, about="late asks failed")


def ask_failed(actor: Actor[Any], message: Message[Any], ask: AskRef, error: Exception) -> None:
    """A handler serving an ask raised: the error goes to the asker, and the actor carries on. If
    the asker is gone (timed out, cancelled), the error is logged, within `LATE_ASK_LOG_LIMIT`
    lines a minute.

    The error leaves without this mainloop's frame, where it was caught, and that frame is
    cleared when the mainloop ends: a record of the error in the asker (a dead letter if the
    asker fails) would else keep it, and this actor, alive after this actor has ended (the
    handler's frame links back to it)."""
    _ask_failed(actor, message, ask, error, sys._getframe(1))  # the caller's frame


def _ask_failed(
    actor: Actor[Any], message: Message[Any], ask: AskRef, error: Exception, mainloop: Any
) -> None:
    trace = error.__traceback__
    if trace is not None and trace.tb_frame is mainloop:
        error.__traceback__ = trace.tb_next
        clear_when_done([mainloop])
    if not ask.fail(error) and not isinstance(error, UnhandledMessage):
        _late_asks.log(
            logging.ERROR,
            "%s failed serving an ask that is already over",
            type(message).__name__,
            exc_info=error,
            through=actor.logger,
        )


def cancelled_error(actor: Actor[Any], message: Any, error: asyncio.CancelledError) -> RuntimeError:
    """The failure that a `CancelledError` let out by a handler stands for, when nothing
    cancelled the task that ran it (the handler awaited a task that was cancelled): a
    `RuntimeError` caused by it, handled as any failure of that handler is. (The test kit's
    ``run_handler`` makes the same.)"""
    shown = actor._actor_failing if type(message) in SIGNALS else message  # a timer's, a notice's
    about = "an input task" if shown is None else type(shown).__name__
    stray = RuntimeError(
        f"the handler of {about} raised CancelledError, but {actor.identifier} was not cancelled"
        " (it awaited something cancelled)"
    )
    stray.__cause__ = error
    return stray


def _stray(actor: Actor[Any], message: Any, error: BaseException, mainloop: Any) -> RuntimeError | None:
    """`cancelled_error` for ``error`` if it is a `CancelledError` while the running task (the
    actor's) was not cancelled; ``None`` for a real cancellation, and on Python 3.10, where a
    task cannot tell (``Task.cancelling`` is 3.11+): any `CancelledError` then cancels the actor.
    The ``mainloop`` frame, which caught it, leaves its traceback (see `ask_failed`)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    if not isinstance(error, asyncio.CancelledError) or cancelling is None or cancelling():
        return None
    trace = error.__traceback__
    if trace is not None and trace.tb_frame is mainloop:
        error.__traceback__ = trace.tb_next
        clear_when_done([mainloop])
    return cancelled_error(actor, message, error)


def ask_interrupted(
    actor: Actor[Any], message: Message[Any], ask: AskRef, handoffs: int, error: BaseException
) -> bool:
    """The handler serving ``ask`` raised ``error``, no ``Exception``. If it is a `CancelledError`
    of the handler's own (see `_stray`), the asker gets the failure it stands for, the actor
    carries on: True. Else the actor ends (``EndMainLoop`` is not this; a cancellation): the ask
    fails now with `ActorStopped` unless it was handed on, and False: the caller raises ``error``."""
    mainloop = sys._getframe(1)
    stray = _stray(actor, message, error, mainloop)
    if stray is None:
        ask.abandon(handoffs, actor.identifier, message)
        return False
    _ask_failed(actor, message, ask, stray, mainloop)
    return True


def told_interrupted(actor: Actor[Any], message: Any, error: asyncio.CancelledError) -> bool:
    """A handler of a told message (or a signal) raised ``error``. A real cancellation: False, the
    caller raises it. A `CancelledError` of the handler's own (see `_stray`) is that handler's
    failure: True if the actor carries on (see `failed`), else the failure is raised here."""
    stray = _stray(actor, message, error, sys._getframe(1))
    if stray is None:
        return False
    if not failed(actor, message, stray):
        raise stray from error
    return True


def decision_on(actor: Actor[Any], error: Exception) -> str:
    """What follows when a handler of ``actor`` fails with ``error`` on a told message, as
    `failed` and the supervisor will decide it: ``"unhandled"`` (no handler took it; the actor
    carries on), ``"resume"``, ``"restart"``, ``"stop"`` or ``"escalate"``. Reads, changes nothing.
    A supervisor that gives up meanwhile (restart intensity) can still turn a restart into a
    stop."""
    if isinstance(error, UnhandledMessage):
        return "unhandled"
    record = actor._actor_record
    if record is None:
        return "stop"
    try:
        directive = directive_on_failure(record.decider, error)
    except Exception:  # the decider failed: `failed` will escalate its error
        return "escalate"
    if directive is None:
        return "stop"
    if directive in ("resume", "escalate"):
        return directive
    if directive == "stop" or record.spec.restart == "temporary":
        return "stop"
    return "restart"


def log_failure(actor: Actor[Any], error: BaseException) -> None:
    """Log the error that ends an incarnation: a failure that its supervision answers with a
    restart (by design) is one WARNING line, its traceback at the level the alarm settings say
    (within `RESTART_LOG_LIMIT` lines a minute for the actor's class); any other, the error with
    its traceback, also a failure its supervisor would restart but for its restart intensity
    (as the restarts counted so far stand: the supervisor's decision follows, in its task)."""
    record = actor._actor_record
    logger = actor.logger
    if record is None or outcome_of_end(record, error) != "restart":
        logger.exception("%s failed", actor.identifier)
        return
    strategy = record.strategy
    if not record.restart_log.would_allow(asyncio.get_running_loop().time(), strategy):
        logger.exception(
            "%s failed, past its supervisor's restart intensity (%d in %g s): not restarted",
            actor.identifier,
            strategy.max_restarts,
            strategy.within,
        )
        return
    limit = _restarts.get(type(actor))
    if limit is None:
        about = f"restarts of {type(actor).__qualname__}"
        limit = _restarts[type(actor)] = LogLimit(logger.logger, limit=RESTART_LOG_LIMIT, about=about)
    text = "%s failed and is restarted: %s"
    if not limit.log(logging.WARNING, text, actor.identifier, shorten(repr(error)), through=logger):
        return
    level = alarms.alarm_settings.restart_traceback_level
    if logger.isEnabledFor(level):
        logger.log(level, "%s failed (restarted)", actor.identifier, exc_info=error)


def watch_loop(actor: Actor[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Start the slow-handler watchdog of ``loop`` (see ``_alarms``) unless it was asked for
    already, telling it the frames in which a message is handled, and their actor and message
    variables."""
    if loop is alarms.last_loop:  # the mainloop tests this first, without the call
        return
    mainloop = type(actor)._actor_mainloop.__code__
    alarms.watch_loop(loop, {mainloop: ("self", "message"), deliver.__code__: ("actor", "message")})


def mailbox_depth(actor: Actor[Any], depth: int) -> None:
    """The mainloop saw ``depth`` messages queued, past the mailbox's next alarm: warn."""
    mailbox = actor._actor_mailbox
    mailbox.depth_alarm = alarms.mailbox_depth(actor.identifier, depth, mailbox.depth_alarm)


def outcome_of(actor: Actor[Any], reason: BaseException | None) -> Outcome:
    """How this incarnation's end counts (noted on its supervision record, if any): replaced by a
    restart, stopped for good, or stopped with its supervisor failing too."""
    record = actor._actor_record
    if record is None or type(reason) is GeneratorExit:  # closed: see `can_await`
        return "stop"
    record.outcome = outcome = outcome_of_end(record, reason)
    return outcome


def restart_reason(actor: Actor[Any], reason: BaseException | None) -> BaseException | None:
    """What `Actor.pre_restart` is told: this incarnation's failure, or a sibling's."""
    record = actor._actor_record
    if record is not None and record.state == "restarting":
        return record.reason  # a sibling's failure
    return reason


# -- the end ----------------------------------------------------------------------------------


def close(actor: Actor[Any], outcome: Outcome, reason: BaseException | None = None) -> None:
    """This incarnation handles no more messages: cancel its timers, stop handling its input
    tasks and fail the asks it holds unanswered. Unless it is to be replaced by a restart, the
    mailbox closes too: what is queued becomes dead letters, and queued asks fail. The asks fail
    with `ActorStopped` whose ``reason`` is ``reason`` (why the mainloop ended, if it failed)."""
    actor._actor_closed = True
    if actor._actor_timers:
        actor.cancel_all_timers()
    if actor._actor_inputs is not None:
        actor._actor_inputs.close()
    held, actor._actor_held = actor._actor_held, None
    if held is not None:
        held.fail_all(actor.identifier, reason)
    if outcome == "restart":
        # The mailbox goes to the next incarnation; this one's signals stay behind, the watch
        # notices for the actor (its reference watched) go on.
        actor._actor_mailbox.hand_over(_is_notice)
    else:
        actor._actor_mailbox.close(reason)


def can_await(actor: Actor[Any], reason: BaseException | None) -> bool:
    """False if the mainloop ends because its coroutine was closed (``GeneratorExit``) rather
    than its task cancelled: at interpreter exit, the collector closes the tasks of a loop closed
    without cancelling them. Such a coroutine can await nothing more (no teardown, no children
    stopped), and its task will never be done: it is let go here."""
    if type(reason) is not GeneratorExit:
        return True
    RUNNING.discard(cast("asyncio.Task[None]", actor._actor_task))
    return False


def _is_notice(item: object) -> bool:
    return type(item) is not InputSignal


async def release(actor: Actor[Any]) -> None:
    """Cancel the input tasks and stop the children, newest first. Idempotent. If this is
    cancelled meanwhile (a stop's timeout ran out), the children not yet stopped are cancelled at
    once rather than left running without a parent."""
    inputs, actor._actor_inputs = actor._actor_inputs, None
    children = actor._actor_children
    try:
        if inputs:
            await inputs.cancel_all()
    except BaseException:
        if children is not None:
            await children.abort_all()
        raise
    if children is not None:
        await children.stop_all()


class ActorTask(asyncio.Task[None]):
    """An actor's mainloop task, when the loop has no task factory: a task that knows its actor.

    The mainloop ends by itself (``RUNNING``, its waiters): a task needs no done callback, which
    cost a handle, a loop step, a bound method and a copy of the context per actor (128 bytes of
    an idle one; spawn + stop ran three callbacks where a hand-written actor runs two). Only a
    task cancelled before its first step never runs the mainloop's ``finally``: `cancel` then adds
    the callback, `task_done`, which covers it (and does nothing for a task that did run it).
    """

    __slots__ = ("actor",)

    actor: Actor[Any] | None
    """The actor, until its mainloop's last step (`ended`)."""

    def cancel(self, msg: Any | None = None) -> bool:
        cancelled = super().cancel(msg)
        if cancelled:
            self.add_done_callback(_cancelled_task_done)
        return cancelled


def _cancelled_task_done(task: asyncio.Task[None]) -> None:
    actor = cast(ActorTask, task).actor
    if actor is not None:  # else its mainloop ran to its last step, which did all of this
        task_done(actor, task)


def start_task(actor: Actor[Any], mainloop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Start ``actor``'s mainloop task, held in ``RUNNING`` until the mainloop ends.

    With no task factory set on the loop, an `ActorTask`; else the factory's task, with
    `task_done` as its done callback.
    """
    loop = asyncio.get_running_loop()
    if loop.get_task_factory() is None:
        actor_task = ActorTask(mainloop, loop=loop)
        actor_task.actor = actor
        task: asyncio.Task[None] = actor_task
    else:
        task = loop.create_task(mainloop)
        task.add_done_callback(functools.partial(task_done, actor))
    RUNNING.add(task)
    return task


def task_done(actor: Actor[Any], task: asyncio.Task[None]) -> None:
    """The mainloop task is done. One cancelled before its first step never ran the mainloop's
    ``finally``: close the actor (failing its queued asks) and wake whoever waits for it to stop.
    Does nothing more for one that ran it."""
    RUNNING.discard(task)
    if not actor._actor_closed:
        reason: BaseException | None = None
        if actor._actor_record is not None:
            reason = asyncio.CancelledError()
        outcome = outcome_of(actor, reason)  # a supervisor acts on it as usual
        close(actor, outcome)
        if outcome != "restart":
            notify_watchers(actor._actor_mailbox, actor._actor_ref, reason)
    wake_waiters(actor)


def stopped_from_below(actor: Actor[Any], task: asyncio.Task[None], timeout: float | None) -> bool:
    """True if the running task is the mainloop of one of ``actor``'s descendants: `Actor.stop`
    then does not wait, as ``actor``'s stop waits for that descendant's, and its ``timeout`` (if
    any) cancels ``task`` from the loop's timer."""
    current = asyncio.current_task()
    pending = list(actor.children)
    while pending:
        child = pending.pop()
        if child._actor_task is current:
            if timeout is not None:
                asyncio.get_running_loop().call_later(timeout, task.cancel)
            return True
        if child._actor_children is not None:
            pending.extend(child._actor_children.actors)
    return False


def done_waiter(actor: Actor[Any]) -> asyncio.Future[None]:
    """Wait until the mainloop and teardown are over, without raising the actor's error.

    The caller being cancelled cancels only its wait, not the actor. The mainloop wakes its
    waiters as its last step, so that they resume one loop iteration earlier than a done
    callback would let them (a third of the cost of spawn + stop); `task_done` covers a task
    cancelled before it ever ran. A future rather than a coroutine: one coroutine less per stop.
    Call it only while the task is not done.
    """
    waiter: asyncio.Future[None] = asyncio.Future(loop=asyncio.get_running_loop())
    if actor._actor_waiters is None:
        actor._actor_waiters = []
    actor._actor_waiters.append(waiter)
    return waiter


def ended(actor: Actor[Any]) -> None:
    """The mainloop's last step: its task is let go (it is done once this step returns), and
    every `Actor.stop` waiting for it resumes, in the next loop iteration."""
    task = actor._actor_task
    if task is not None:
        RUNNING.discard(task)
        if type(task) is ActorTask:  # a record's traceback may reach the task (`Actor.wait`'s
            task.actor = None  # frame): let go of the actor
    waiters, actor._actor_waiters = actor._actor_waiters, None
    if waiters is not None:  # `wake_waiters`, inlined: spawn + stop is a few calls long
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def stopped_within(actor: Actor[Any], task: asyncio.Task[None], timeout: float) -> None:
    """`Actor.stop` with a timeout: wait until the mainloop is over, and if that takes longer
    than ``timeout`` seconds, cancel its task and wait until it is over."""
    # asyncio.wait, not wait_for: on Python 3.11, wait_for returns normally when the caller is
    # cancelled in the same loop iteration as the actor ends, losing the cancellation (a
    # supervisor cancelled during a group restart then never ends, and loop shutdown hangs).
    waiter = done_waiter(actor)
    await asyncio.wait([waiter], timeout=timeout)
    if not waiter.done():
        task.cancel()
        if not task.done():
            await done_waiter(actor)


def exit_error(actor: Actor[Any], raised: BaseException | None) -> BaseException | None:
    """What ``async with actor`` raises on exit (the actor stopped): its own error, if its block
    ``raised`` none. If the block raised, that error goes on, and the actor's is read all the
    same: it was logged where it happened (`log_failure`, `teardown_failed`), and asyncio would
    log it again as never retrieved whenever the task is freed."""
    task = actor._actor_task
    if task is None or task.cancelled() or (error := task.exception()) is None:
        return None
    return error if raised is None else None


def teardown_failed(actor: Actor[Any], reason: BaseException | None, error: BaseException) -> BaseException:
    """The incarnation's teardown (``pre_restart``, ``mainloop_teardown``, the release of its
    inputs and children) raised ``error``, which ends its task: logged here with its traceback,
    as nothing else logs it (a cancellation is not: a stop's timeout cancels a clean stop's
    teardown). Returns the reason its watchers are told: why it failed first, if it did."""
    if isinstance(error, Exception):
        actor.logger.error("%s failed in its teardown", actor.identifier, exc_info=error)
    return reason or error


def wake_waiters(actor: Actor[Any]) -> None:
    """Resume every `Actor.stop` waiting for the mainloop to be over."""
    waiters, actor._actor_waiters = actor._actor_waiters, None
    for waiter in waiters or ():
        if not waiter.done():
            waiter.set_result(None)
