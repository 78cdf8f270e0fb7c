"""run_handler: one handler of an actor against one message, without its mainloop.

What the handler sends is observed at the references it sends through: while at least one
`run_handler` is in progress, ``ActorRef.tell_nowait``, ``ActorRef.ask``,
``Reference.tell_nowait`` and ``Actor.register_child`` are wrapped (class attributes, restored
when the last run ends). The wrappers record only calls made in the context of the handler under
test (its task, and the tasks it creates, which inherit its context variables), and otherwise do
what the originals do, so other actors running meanwhile are not affected. The core stays free of
any hook on its hot path.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, cast, overload

from .. import NO_REPLY, Actor, ActorRef, BaseRef, EndMainLoop, Message, NoReply, Reference
from ..lowlevel import AskRef, Handler, Request, check_accepted, handler_for, mailbox_of, with_sender
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
    - ``spawned``: the children it registered, in order. They are not started: their
      references queue what they are told (see ``sent``), and a test can run their handlers
      in turn or start them.
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


class _Recorder:
    __slots__ = ("actor", "sent", "spawned", "open")

    def __init__(self, actor: Actor[Any]) -> None:
        self.actor = actor
        self.sent: list[Sent] = []
        self.spawned: list[Actor[Any]] = []
        self.open = True


_recorder: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "actorio_testing_recorder", default=None
)
_installed = 0

_ref_tell_nowait = ActorRef.tell_nowait
_ref_ask = ActorRef.ask
_reference_tell_nowait = Reference.tell_nowait
_register_child = Actor.register_child


def _current() -> _Recorder | None:
    recorder = _recorder.get()
    return recorder if recorder is not None and recorder.open else None


def _recording_ref_tell_nowait(self: ActorRef[Any], message: Any, /) -> None:
    _ref_tell_nowait(self, message)
    recorder = _current()
    if recorder is not None:
        recorder.sent.append(Sent(self, message))


async def _recording_ref_ask(self: ActorRef[Any], message: Any, timeout: float | None = None) -> Any:
    recorder = _current()
    if recorder is not None:
        recorder.sent.append(Sent(self, message, asked=True))
    return await _ref_ask(self, message, timeout)


def _recording_reference_tell_nowait(self: Reference, message: Any, /) -> None:
    _reference_tell_nowait(self, message)
    recorder = _current()
    if recorder is not None:
        recorder.sent.append(Sent(self, message))


async def _recording_register_child(self: Actor[Any], child: Actor[Any]) -> ActorRef[Any]:
    recorder = _current()
    if recorder is not None and self is recorder.actor:
        recorder.spawned.append(child)
        return child.reference
    return await _register_child(self, child)


def _install() -> None:
    global _installed
    if _installed == 0:
        setattr(ActorRef, "tell_nowait", _recording_ref_tell_nowait)  # noqa: B010
        setattr(ActorRef, "ask", _recording_ref_ask)  # noqa: B010
        setattr(Reference, "tell_nowait", _recording_reference_tell_nowait)  # noqa: B010
        setattr(Actor, "register_child", _recording_register_child)  # noqa: B010
    _installed += 1


def _uninstall() -> None:
    global _installed
    _installed -= 1
    if _installed == 0:
        setattr(ActorRef, "tell_nowait", _ref_tell_nowait)  # noqa: B010
        setattr(ActorRef, "ask", _ref_ask)  # noqa: B010
        setattr(Reference, "tell_nowait", _reference_tell_nowait)  # noqa: B010
        setattr(Actor, "register_child", _register_child)  # noqa: B010


async def _call(handler: Handler, actor: Actor[Any], message: Message[Any], recorder: _Recorder) -> Any:
    # Set in this task's own context: the tasks the handler creates inherit it, the caller does not.
    _recorder.set(recorder)
    return await handler(actor, message)


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
    not run, and the actor is not started: ``actor`` must not be running
    (``RuntimeError``). A message outside its protocol raises ``TypeError``. An exception from the
    handler (other than `EndMainLoop`) is raised here. A handler still running after
    ``timeout`` seconds is cancelled and ``AssertionError`` says what it had sent so far.
    """
    __tracebackhide__ = True
    if actor.running:
        raise RuntimeError(f"run_handler takes an actor whose mainloop is not running; {actor!r} is running")
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

    recorder = _Recorder(actor)
    _install()
    coroutine: Coroutine[Any, Any, Any] = _call(handler, actor, message, recorder)
    task = loop.create_task(coroutine)
    try:
        await asyncio.wait([task], timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
            raise AssertionError(
                f"{cls.__name__}.{getattr(handler, '__name__', 'handler')} did not finish within "
                f"{timeout:g} s; it had sent [{describe_all(s.message for s in recorder.sent)}] "
                f"and spawned [{', '.join(repr(child) for child in recorder.spawned)}]"
            )
    except BaseException:
        task.cancel()
        raise
    finally:
        recorder.open = False  # tasks the handler left running record no more
        _uninstall()

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
        sent=recorder.sent,
        spawned=recorder.spawned,
        stopped=stopped or (actor.stopped and not stopped_before),
    )
