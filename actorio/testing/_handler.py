"""run_handler: one handler of an actor against one message, without its mainloop.

The handler runs against a context of its own, as Akka's BehaviorTestKit runs a behaviour against
a stubbed context; nothing of a class is replaced, and other actors running meanwhile are not
affected:

- what it sends is observed through ``actorio.lowlevel.observe_sends``, in the handler's task
  and the tasks it creates (they inherit its context variables), while the handler runs;
- what it does with children goes, through ``actorio.lowlevel.substitute_children``, to a
  stand-in for the actor's supervisor, for that actor alone and while the handler runs: the
  children are made and recorded, not started.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, cast, overload

from .. import NO_REPLY, Actor, ActorRef, BaseRef, ChildSpec, EndMainLoop, Message, NoReply
from ..lowlevel import (
    AskRef,
    Handler,
    Mailbox,
    Request,
    SupervisorLike,
    cancelled_error,
    check_accepted,
    handler_for,
    mailbox_of,
    make_child,
    observe_sends,
    substitute_children,
    with_sender,
)
from ._describe import describe_all
from ._probe import DEFAULT_TIMEOUT

__all__ = ["HandlerOutcome", "Sent", "run_handler"]

M = TypeVar("M", bound=Message[Any])
R = TypeVar("R")
N = TypeVar("N", bound=Message[Any])


class Sent(NamedTuple):
    """One message a handler sent: to ``recipient``, ``message`` (as given to ``tell``/``ask``),
    and ``asked`` if it was an ask."""

    recipient: BaseRef
    message: Message[Any]
    asked: bool = False


@dataclass(frozen=True)
class HandlerOutcome(Generic[M, R]):
    """What one handler did with one message (see `run_handler`), typed by the message and its reply.

    - ``message``: the message as the handler received it (for an ask, with its one-shot sender).
    - ``returned``: the handler's return value (``None`` if it raised `EndMainLoop`).
    - ``reply``: what an asker would have received during the run (the return value, or what
      the handler told ``msg.sender`` first), or `NO_REPLY` if the handler handed the message
      on, or replied nothing yet, or the message was told.
    - ``sent``: every message the handler told or asked, in order, with its recipient; replies
      to the asker are in ``reply``, not here.
    - ``spawned``: the children it started (``register_child``, ``supervise``), in order. They
      are made, not started: their references queue what they are told (see ``sent``), and a
      test can run their handlers in turn or start them.
    - ``stopped``: this handler ended its actor (raised `EndMainLoop` or called ``stop()``).
    """

    message: M
    returned: Any
    reply: R | NoReply
    sent: list[Sent] = field(default_factory=list[Sent])
    spawned: list[Actor[Any]] = field(default_factory=list[Actor[Any]])
    stopped: bool = False

    def sent_to(self, recipient: BaseRef | Actor[Any]) -> list[Message[Any]]:
        """The messages sent to ``recipient`` (a reference, or an actor: its reference), in order."""
        target = recipient.reference if isinstance(recipient, Actor) else recipient
        return [sent.message for sent in self.sent if sent.recipient == target]


class _Children:
    """The actor's children while its handler runs: what it starts is made and recorded in
    ``spawned``, not started; what it had before (``previous``) it keeps."""

    __slots__ = ("previous", "spawned", "current")

    def __init__(self, previous: SupervisorLike | None) -> None:
        self.previous = previous
        self.spawned: list[Actor[Any]] = []
        self.current: list[Actor[Any]] = []  # spawned, and not stopped since

    @property
    def actors(self) -> list[Actor[Any]]:
        before = [] if self.previous is None else self.previous.actors
        return [*before, *self.current]

    def _spawn(self, child: Actor[Any]) -> ActorRef[Any]:
        self.spawned.append(child)
        self.current.append(child)
        return child.reference

    async def register(self, child: Actor[Any], /) -> ActorRef[Any]:
        return self._spawn(child)

    async def supervise(self, spec: ChildSpec[Actor[Any]], /) -> ActorRef[Any]:
        return self._spawn(make_child(spec))

    async def stop_child(self, mailbox: Mailbox, /) -> bool:
        for child in self.current:
            if mailbox_of(child) is mailbox:
                self.current.remove(child)
                await child.stop()  # never started: its address closes
                return True
        return self.previous is not None and await self.previous.stop_child(mailbox)

    async def stop_all(self) -> None:
        # The children spawned here never started; the ones from before are the supervisor's.
        if self.previous is not None:
            await self.previous.stop_all()

    async def abort_all(self) -> None:
        if self.previous is not None:
            await self.previous.abort_all()


class _Run:
    """One run: the sends observed (`record`) and the children stand-in."""

    __slots__ = ("actor", "sent", "children")

    def __init__(self, actor: Actor[Any]) -> None:
        self.actor = actor
        self.sent: list[Sent] = []
        self.children = _Children(None)

    def record(self, recipient: BaseRef, message: Message[Any], asked: bool) -> None:
        self.sent.append(Sent(recipient, message, asked))

    @property
    def spawned(self) -> list[Actor[Any]]:
        return self.children.spawned


_in_a_run: weakref.WeakSet[Actor[Any]] = weakref.WeakSet()
"""The actors whose handler is running under `run_handler`: one at a time, as in a mainloop."""


async def _call(handler: Handler, message: Message[Any], run: _Run) -> Any:
    # Entered in the handler's own task: the tasks it creates inherit the observation, the caller
    # does not; both end when the handler does (tasks it leaves running record no more).
    actor = run.actor
    with observe_sends(run.record), substitute_children(actor, run.children) as previous:
        run.children.previous = previous
        return await handler(actor, message)


def _run_over(actor: Actor[Any], task: object) -> None:
    _in_a_run.discard(actor)


def _take_if_queued(actor: Actor[Any], message: object) -> None:
    """A message told to the actor (a child's request, say) waits in its mailbox: handling it
    takes it out, as the mainloop would, so that it is not handled twice or dead-lettered."""
    mailbox = mailbox_of(actor)
    if mailbox is not None:
        mailbox.withdraw(message)


@overload
async def run_handler(
    actor: Actor[Message[Any]],
    message: N,
    *,
    asked: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> HandlerOutcome[N, Any]: ...
@overload
async def run_handler(
    actor: Actor[M],
    message: Request[M, R],
    *,
    asked: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> HandlerOutcome[M, R]: ...
async def run_handler(
    actor: Actor[Any],
    message: Any,
    *,
    asked: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> HandlerOutcome[Any, Any]:
    """Run the handler that ``actor``'s class dispatches ``message`` to, once, without a mainloop,
    and return what it did: its reply, every message it sent and to whom, the children it
    spawned (see `HandlerOutcome`).

    The handler is chosen as the mainloop chooses it (the nearest class in the message's MRO,
    else ``handle_message``) and runs in a task of its own, in the caller's loop; its awaits
    (``asyncio.sleep``, asks to real actors) really wait. With ``asked`` (the default) the
    message is served as an ask from the test, with the mainloop's reply rules; if the message
    already carries an ask's sender (one handed on, or made by `TestProbe.asking`), that ask is
    served and answered. With ``asked=False`` it is handled as told, its sender unchanged.

    If the message waits in the actor's mailbox (it was told to a child that the outcome of a
    previous run spawned), it is taken out, as the mainloop would take it. ``mainloop_setup`` is
    not run, and the actor is not started: ``actor`` must not be running, nor be running a
    handler under another `run_handler` (``RuntimeError``: one message at a time). What it
    sends is recorded in its task and the tasks it creates, while it runs; the children it
    starts are made and recorded, not started (``self.children`` lists them meanwhile). A
    message outside its protocol raises ``TypeError``. An exception from the handler (other
    than `EndMainLoop`) is raised here. A handler still running after ``timeout`` seconds is
    cancelled and ``AssertionError`` says what it had sent so far.
    """
    __tracebackhide__ = True
    if actor.running:
        raise RuntimeError(f"run_handler takes an actor whose mainloop is not running; {actor!r} is running")
    if actor in _in_a_run:
        raise RuntimeError(f"{actor!r} is running a handler under run_handler already: one at a time")
    check_accepted(actor.reference, message)
    _take_if_queued(actor, message)
    stopped_before = actor.stopped
    cls = type(actor)
    handler, by_fallback = handler_for(cls, type(cast(object, message)))
    loop = asyncio.get_running_loop()
    ask: AskRef | None = None
    fresh = False
    if asked:
        sender = message.sender
        if type(sender) is AskRef:
            ask = sender
        else:
            ask = AskRef(loop.create_future())
            fresh = True
            message = with_sender(message, ask)
    answered_before = ask is not None and ask.future.done()
    handoffs = ask.handoffs if ask is not None else 0

    run = _Run(actor)
    coroutine: Coroutine[Any, Any, Any] = _call(handler, message, run)
    task = loop.create_task(coroutine)
    _in_a_run.add(actor)
    task.add_done_callback(functools.partial(_run_over, actor))  # once the handler is over
    try:
        await asyncio.wait([task], timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
            raise AssertionError(
                f"{cls.__name__}.{getattr(handler, '__name__', 'handler')} did not finish within "
                f"{timeout:g} s; it had sent [{describe_all(s.message for s in run.sent)}] "
                f"and spawned [{', '.join(repr(child) for child in run.spawned)}]"
            )
    except BaseException:
        task.cancel()
        raise

    stopped = False
    try:
        returned = task.result()
    except EndMainLoop:
        returned = None
        stopped = True
        if ask is not None and not fresh:
            ask.abandon(handoffs, actor.identifier, message)  # as the mainloop does
    except Exception as error:
        if ask is not None and not fresh:
            ask.fail(error)  # an ask handed in: its asker learns of the failure, as from the mainloop
        raise
    except asyncio.CancelledError as error:  # the handler's own: this cancels it only past the timeout
        failure = cancelled_error(actor, message, error)
        if ask is not None and not fresh:
            ask.fail(failure)
        raise failure from error
    reply: Any = NO_REPLY
    if ask is not None and not answered_before:
        future = ask.future
        if not stopped:
            ask.settle(returned, handoffs, by_fallback)  # held (not answered) when it returns True
        if future.done() and not future.cancelled() and future.exception() is None:
            reply = future.result()
    return HandlerOutcome(
        message=message,
        returned=returned,
        reply=reply,
        sent=run.sent,
        spawned=run.spawned,
        stopped=stopped or (actor.stopped and not stopped_before),
    )
