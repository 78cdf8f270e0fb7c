"""The actor: the user-facing `Actor` class and its mainloop, one asyncio task that drains a
mailbox and dispatches each message to its handler.

What an actor does besides handling messages lives beside it, one concern per module: the ask
rule in ``_ask.py``, the mailbox in ``_mailbox.py``, how an incarnation fails and ends in
``_incarnation.py``, timers in ``_timers.py``, input tasks and barriers in ``_inputs.py``,
children and their supervision in ``_supervisor.py``.
"""

# pyright: reportPrivateUsage=false
# The actor's framework slots (``_actor_*``) are read by the core modules that act on it (its
# supervisor, its timers): they are one unit. Nothing outside the core reads them.

from __future__ import annotations

import asyncio
import itertools
import logging
from asyncio import Future
from collections.abc import Awaitable, Callable, Coroutine, Generator, Hashable
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar, cast, overload

from . import _alarms as alarms
from . import _incarnation as incarnation
from ._ask import AskRef, HeldAsks
from ._dispatch import Handler, resolve_handler, set_up_dispatch
from ._exceptions import EndMainLoop, UnhandledMessage
from ._inputs import InputHandler, InputTasks, input_handler
from ._mailbox import BoundedMailbox, Mailbox, kept_capacity
from ._message import Message
from ._protocol import ProtocolAttribute, check_wire_names
from ._ref import ActorRef
from ._statistics import statistics as _statistics
from ._supervision import Backoff, ChildSpec, Decider, RestartType, SupervisedChild, SupervisorStrategy
from ._supervisor import Supervisor, SupervisorLike
from ._timers import Timers, schedule
from ._types import P, R, Request
from ._watch import notify_watchers, unwatch, watch

__all__ = ["Actor", "is_actor_class"]

Q = TypeVar("Q", bound=Message[Any])
M = TypeVar("M", bound=Message[Any])

_actor_serials = itertools.count(1)
_ONCE = (None,)
_NO_MESSAGE = cast("Message[Any]", None)
_logger = logging.getLogger("actorio.actor")


class Actor(Generic[P]):
    """An actor: state owned by one asyncio task that handles one message at a time.

    Declare handlers with ``@handles(MessageType)`` on ``async def`` methods; a message goes to the
    handler of the nearest class in its MRO, else to `handle_message` (which, unless overridden,
    raises `UnhandledMessage`). ``P``, the protocol, is the union of accepted message types.

    Guarantees:

    - One task per actor and no task per message: messages are handled one at a time, in the
      order they were told by each sender (FIFO per sender). Input-task handlers
      (`register_input_task`), timers, watch notices and `handle_child_stopped` run in the same
      task, never while a message is being handled. System messages (stop, `Terminated`
      notices, supervision) are handled ahead of queued user messages.
    - A handler serving an ask answers it with its return value (``None`` included) unless it
      told the sender something first or handed the message on. A handler that raises while
      serving an ask raises at the asker, and the actor carries on.
    - An exception while handling a told message (or in an input-task or timer handler) stops
      the actor with that error: ``await actor`` raises it, and the parent's
      `handle_child_stopped` sees it. For a child started with `supervise`, its supervision decides
      instead (restart, resume, stop or escalate). Either way the message is a dead letter,
      recorded with the error; it is never handled again.
    - When the actor stops, the message being handled is finished, queued messages become dead
      letters and asks still queued (or held unanswered) fail at once with `ActorStopped`; then
      `mainloop_teardown` runs once and the children stop in reverse start order, each within
      its stop timeout (then it is cancelled). Watchers get `Terminated` after that.
    - ``mailbox_capacity`` (a class attribute, or the constructor's argument) bounds the queued
      user messages: ``await tell`` and ``ask`` wait for room, ``tell_nowait`` raises `MailboxFull`.
    - Fair scheduling: after ``mailbox_throughput`` messages handled in a row, the mainloop lets
      the event loop run its other tasks before it goes on.
    """

    __slots__ = (
        "_actor_mailbox",
        "_actor_ref",
        "_actor_task",
        "_actor_closed",
        "_actor_stopping",
        "_actor_serial",
        "_actor_identifier",
        "_actor_logger",
        "_actor_inputs",
        "_actor_children",
        "_actor_held",
        "_actor_waiters",
        "_actor_timers",
        "_actor_record",
        "_actor_failing",
        "__weakref__",
    )

    _actor_handlers: ClassVar[dict[type, Handler]] = {}
    _actor_dispatch: ClassVar[dict[type, Handler]] = {}
    _actor_accepts: ClassVar[dict[type, bool]] = {}
    _actor_message_types: ClassVar[tuple[type, ...] | None] = None
    _actor_fallback: ClassVar[Handler]
    _actor_custom_setup: ClassVar[bool] = False
    _actor_custom_teardown: ClassVar[bool] = False

    protocol = ProtocolAttribute()
    """The class's protocol as data (`ActorProtocol`): message types, wire names, reply types and
    handlers; validates wire payloads, exports JSON Schema. Made on first use."""

    mailbox_capacity: ClassVar[int | None] = None
    """How many user messages the mailbox holds (``None``: no bound). See `tell` and `MailboxFull`.
    An actor given another by its constructor reports that one (unless its class has no ``__dict__``)."""

    mailbox_throughput: ClassVar[int] = 1000
    """How many messages the mainloop handles in a row before it lets the event loop run its other
    tasks (as Akka's dispatcher ``throughput``): an actor that keeps telling itself, or drains a
    long burst, never starves the rest of the process (signal handlers included)."""

    supervisor_strategy: ClassVar[SupervisorStrategy] = SupervisorStrategy()
    """How the children started with `supervise` are restarted: one for one, at most 3 restarts in
    5 seconds, restart after any ``Exception``."""

    child_stop_timeout: ClassVar[float | None] = 5.0
    """Seconds a child started with `register_child` may take to stop when this actor stops,
    before it is cancelled (children from `supervise` use their `ChildSpec`'s ``stop_timeout``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        set_up_dispatch(cls, Actor, incarnation.SIGNALS)
        check_wire_names(cls)
        if not (isinstance(throughput := cast(object, cls.mailbox_throughput), int) and throughput >= 1):
            raise TypeError(f"{cls.__qualname__}.mailbox_throughput must be an int >= 1")
        # Skipping the base class's empty hooks saves two coroutines per actor lifetime.
        cls._actor_custom_setup = cls.mainloop_setup is not Actor.mainloop_setup
        cls._actor_custom_teardown = cls.mainloop_teardown is not Actor.mainloop_teardown

    def __init__(self, *, identifier: str | None = None, mailbox_capacity: int | None = None) -> None:
        cls = type(self)
        capacity = cls.mailbox_capacity if mailbox_capacity is None else kept_capacity(self, mailbox_capacity)
        mailbox = Mailbox(self) if capacity is None else BoundedMailbox(self, capacity)
        self._actor_mailbox = mailbox
        self._actor_ref: ActorRef[P] = ActorRef(mailbox, cls._actor_message_types, cls._actor_accepts)
        self._actor_task: asyncio.Task[None] | None = None
        self._actor_closed = False
        self._actor_serial = next(_actor_serials)
        self._actor_identifier = identifier
        self._actor_logger: logging.LoggerAdapter[logging.Logger] | None = None
        self._actor_stopping = False
        # Created only when used: every byte counts a hundred thousand times.
        self._actor_inputs: InputTasks | None = None
        self._actor_children: SupervisorLike | None = None
        self._actor_held: HeldAsks | None = None
        self._actor_waiters: list[asyncio.Future[None]] | None = None
        self._actor_timers: Timers | None = None
        self._actor_record: SupervisedChild | None = None
        self._actor_failing: Any = None

    # -- identity -------------------------------------------------------------------------

    @property
    def identifier(self) -> str:
        """This actor's name: the one given to ``__init__``, else ``ClassName-<serial>``. Every
        incarnation of a supervised child has the same."""
        if self._actor_identifier is None:
            self._actor_identifier = f"{type(self).__name__}-{self._actor_serial}"
        return self._actor_identifier

    @property
    def reference(self) -> ActorRef[P]:
        """This actor's address, to tell or ask it, or to give as a message's sender."""
        return self._actor_ref

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger (``actorio.actor``) whose records carry this actor's identifier."""
        if self._actor_logger is None:
            self._actor_logger = logging.LoggerAdapter(_logger, {"actor": self.identifier})
        return self._actor_logger

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier}>"

    # -- messages in ----------------------------------------------------------------------

    async def tell(self, message: P, /) -> None:
        """Tell this actor ``message``; the same as ``self.reference.tell(message)``."""
        await self._actor_ref.tell(message)

    def tell_nowait(self, message: P, /) -> None:
        """The same as ``self.reference.tell_nowait(message)``."""
        self._actor_ref.tell_nowait(message)

    @overload
    def ask(
        self: Actor[Message[Any]], message: Message[Any], timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]: ...
    @overload
    def ask(
        self: Actor[M], message: Request[M, R], timeout: float | None = None
    ) -> Coroutine[Any, Any, R]: ...
    def ask(self, message: Any, timeout: float | None = None) -> Coroutine[Any, Any, Any]:
        """Ask this actor; the same as ``self.reference.ask(message, timeout)``."""
        return self._actor_ref.ask(message, timeout)

    async def handle_message(self, message: Any) -> Any:
        """Handle a message that no ``@handles`` handler takes.

        Override it for the original untyped style: an ask is then answered by the first message
        told to ``message.sender``. By default it raises `UnhandledMessage`: at the asker, for an
        ask; for a told message the message is a dead letter (reason ``unhandled``) and the actor
        carries on.
        """
        raise UnhandledMessage(message, self.identifier)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once `start` was called."""
        return self._actor_task is not None

    @property
    def running(self) -> bool:
        """True from `start` until the mainloop has ended."""
        return self._actor_task is not None and not self._actor_task.done()

    @property
    def stopped(self) -> bool:
        """True once this actor (this incarnation, for a supervised child) handles no messages."""
        return self._actor_closed

    async def start(self) -> ActorRef[P]:
        """Start the mainloop task and return this actor's reference.

        Messages told before `start` are queued and handled once it runs. Raises
        ``RuntimeError`` if the actor was already started.
        """
        if self._actor_task is not None or self._actor_closed:
            raise RuntimeError(f"{self!r} was already started")
        self._actor_mailbox.reader = mainloop = self._actor_mainloop()  # type: ignore[assignment]
        self._actor_task = incarnation.start_task(self, mainloop)
        return self._actor_ref

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the actor and wait until its mainloop and teardown are over.

        The message being handled is finished; messages still queued are not handled (they are
        dead letters; asks among them fail at once with `ActorStopped`). With ``timeout``, a
        handler still running after that many seconds is cancelled. Called from the handler of
        the actor or of one of its descendants (which its stop waits for), it returns at once and
        the actor stops after that handler. Does not raise the actor's own failure: ``await
        actor`` does. Stopping a stopped actor does nothing. A supervised child stopped this way
        has ended cleanly: only a ``permanent`` one is restarted (use its supervisor's
        `stop_child` to stop it for good).
        """
        task = self._actor_task
        if task is None:
            if not self._actor_closed:
                incarnation.close(self, "stop")
                notify_watchers(self._actor_mailbox, self._actor_ref, None)
            return
        if task.done():
            return
        self._actor_stopping = True
        mailbox = self._actor_mailbox
        mailbox.put_first(incarnation.STOP)  # or, with nothing queued, only a wake-up
        reader = mailbox.reader
        if reader is not None and reader.cr_running:
            return  # called from this actor's own code: it stops once the handler returns
        if self._actor_children is not None and incarnation.stopped_from_below(self, task, timeout):
            return  # its stop waits for theirs: the caller's handler returns first
        if timeout is None:
            await incarnation.done_waiter(self)
        else:
            await incarnation.stopped_within(self, task, timeout)

    async def wait(self) -> None:
        """Wait until the mainloop ends; raise the exception that ended it, if any."""
        if (task := self._actor_task) is None:
            raise RuntimeError(f"{self!r} was not started")
        del self  # the error raised gains this frame: a record of it must not keep the actor
        await task

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    async def run_until_stopped(self) -> None:
        """Start the actor if needed, then wait until it stops (see `wait`)."""
        if self._actor_task is None:
            await self.start()
        waiting = self.wait()
        del self  # (as in `wait`)
        await waiting

    async def __aenter__(self) -> ActorRef[P]:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        error = incarnation.exit_error(self, exc)
        del self  # (as in `wait`)
        if error is not None:
            raise error

    async def mainloop_setup(self) -> None:
        """Run in the actor's task before the first message (in every incarnation of a
        supervised child). Override and call ``super()``."""

    async def mainloop_teardown(self) -> None:
        """Run once in the actor's task after it stopped (or before a restart replaces it): cancels
        input tasks, stops children in reverse start order. Override and call ``super()`` (else
        both still happen after it). An error it raises is the reason the watchers are told."""
        await incarnation.release(self)

    async def pre_restart(self, error: BaseException | None) -> None:
        """Run in a supervised child's task when this incarnation is about to be replaced, before
        `mainloop_teardown`. ``error`` is why: this incarnation's failure, a sibling's (with
        ``one_for_all`` or ``rest_for_one``), or ``None`` after a clean end of a ``permanent``
        child. Timers are cancelled already; the mailbox and its queued messages are kept for
        the next incarnation. If the supervisor then gives up (restart intensity), no new
        incarnation comes."""

    async def post_restart(self, error: BaseException | None) -> None:
        """Run in the new incarnation's task after `mainloop_setup`, before its first message, when
        it replaces one that `pre_restart` was called on; ``error`` is the same."""

    statistics = _statistics

    # -- children -------------------------------------------------------------------------

    async def register_child(self, child: Actor[Q]) -> ActorRef[Q]:
        """Start ``child`` as a child of this actor and return its reference.

        When it stops, `handle_child_stopped` runs in this actor's task (by default it raises the
        child's error). Children still running when this actor stops are stopped, in reverse
        start order, each within ``child_stop_timeout``. For a child that is restarted when it
        fails, use `supervise`.
        """
        return await Supervisor.of(self).register(child)

    @overload
    async def supervise(self, child: ChildSpec[Actor[Q]], /) -> ActorRef[Q]: ...
    @overload
    async def supervise(
        self,
        child: Callable[[], Actor[Q]],
        /,
        *,
        name: str | None = None,
        restart: RestartType = "permanent",
        on_failure: Decider | None = None,
        backoff: Backoff | None = None,
        stop_timeout: float | None = 5.0,
    ) -> ActorRef[Q]: ...
    async def supervise(self, child: Any, /, **options: Any) -> ActorRef[Any]:
        """Start a supervised child made by ``child`` (a `ChildSpec`, or a factory with the same
        options as keywords: an actor class, a ``functools.partial``, a lambda) and return its
        reference, which stays valid across restarts.

        When a handler of the child fails on a told message, the message is a dead letter
        (recorded with the error) and ``on_failure`` decides (default: the class's
        ``supervisor_strategy.decider``, else restart after any ``Exception``). On a restart the
        factory makes a new incarnation that takes over the same mailbox: messages queued, and
        told meanwhile, are handled by it, in order. ``restart`` says whether an ended child is
        restarted at all; ``backoff`` delays restarts; the strategy's intensity limits them.
        `handle_child_stopped` is called for every incarnation that ends.
        """
        spec = cast(
            "ChildSpec[Actor[Any]]", child if isinstance(child, ChildSpec) else ChildSpec(child, **options)
        )
        return await Supervisor.of(self).supervise(spec)

    async def stop_child(self, child: ActorRef[Any] | Actor[Any]) -> None:
        """Stop a child of this actor for good (it is not restarted, whatever its restart type)
        and wait until it stopped. Raises ``ValueError`` if it is not a child of this actor."""
        mailbox = child._actor_mailbox if isinstance(child, Actor) else child._mailbox
        children = self._actor_children
        if children is None or not await children.stop_child(cast(Mailbox, mailbox)):
            raise ValueError(f"{child!r} is not a child of {self!r}")

    @property
    def children(self) -> list[Actor[Any]]:
        """The children, in start order (for a supervised child, its current incarnation)."""
        children = self._actor_children
        return [] if children is None else children.actors

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        """Called in this actor's task when a child has stopped (for a supervised child, each
        incarnation that ends, before its supervision acts).

        ``task`` is the child's mainloop task: ``task.exception()`` is the error it failed with.
        By default, for a child from `register_child`, that error is raised here, so the parent
        fails with it too (it is not hidden); for a child from `supervise`, its supervision decides.
        Override to decide otherwise.
        """
        if child._actor_record is not None:
            return
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    # -- death watch ----------------------------------------------------------------------

    def watch(self, target: ActorRef[Any] | Actor[Any]) -> None:
        """Receive a `Terminated` message when ``target`` stops for good (at once, if it has
        already). Watching twice sends one notice; a supervised child's restart is not a stop."""
        watch(target.reference if isinstance(target, Actor) else target, self._actor_ref)

    def unwatch(self, target: ActorRef[Any] | Actor[Any]) -> None:
        """Stop watching ``target``; a notice already queued is still delivered."""
        unwatch(target.reference if isinstance(target, Actor) else target, self._actor_ref)

    # -- timers ---------------------------------------------------------------------------

    def start_timer(self, key: Hashable, message: P, delay: float) -> None:
        """Tell this actor ``message`` once, ``delay`` seconds from now (the loop's clock).

        Starting a timer under a key in use replaces that timer: the old one's message is not
        delivered, even if it was already queued. Timers are cancelled when the actor stops or
        restarts. A bounded mailbox neither refuses timer messages nor counts them in its capacity."""
        schedule(self, key, message, delay, None)

    def start_periodic_timer(
        self, key: Hashable, message: P, interval: float, initial_delay: float | None = None
    ) -> None:
        """Tell this actor ``message`` every ``interval`` seconds (at a fixed rate on the loop's
        clock), the first time after ``initial_delay`` (default: ``interval``). Replacing and
        cancelling work as for `start_timer`."""
        if interval <= 0:
            raise ValueError("a periodic timer needs an interval > 0")
        schedule(self, key, message, interval if initial_delay is None else initial_delay, interval)

    def cancel_timer(self, key: Hashable) -> None:
        """Cancel the timer under ``key`` (if any): its message is not delivered, even if queued."""
        if self._actor_timers is not None:
            self._actor_timers.cancel(key)

    def cancel_all_timers(self) -> None:
        """Cancel every timer of this actor."""
        timers, self._actor_timers = self._actor_timers, None
        if timers is not None:
            timers.cancel_all()

    def is_timer_active(self, key: Hashable) -> bool:
        """True if a timer under ``key`` is started and its message not yet delivered (or, for a
        periodic timer, until it is cancelled)."""
        return self._actor_timers is not None and key in self._actor_timers

    # -- input tasks ----------------------------------------------------------------------

    def register_input_task(
        self,
        factory: Callable[[], Awaitable[Any]],
        handler: InputHandler | None = None,
        count: int | None = None,
        *,
        coro_to_run: InputHandler | None = None,
    ) -> None:
        """Run ``factory()`` as a task; when it is done, call ``await handler(task)`` in the actor.

        The handler never runs while a message is being handled. Then ``factory()`` runs again,
        ``count`` times in all (forever if ``None``). Tasks still running when the actor stops are
        cancelled. ``coro_to_run`` is actorio 0.1.4's name for ``handler`` (deprecated)."""
        handler = input_handler(handler, coro_to_run, count)
        if self._actor_inputs is None:
            self._actor_inputs = InputTasks(self._actor_mailbox)
        self._actor_inputs.add(factory, handler, count, self._actor_task is not None)

    # -- the mainloop ---------------------------------------------------------------------

    async def _actor_mainloop(self) -> None:
        """The actor's task: setup, the messages until the loop ends, close and teardown, in one
        coroutine (none per loop or ask: a frame is 300 bytes per idle actor, a coroutine 0.5 us)."""
        cls = type(self)
        mailbox = self._actor_mailbox
        putters = mailbox.putters
        dispatch = cls._actor_dispatch
        fallback = cls._actor_fallback
        reason: BaseException | None = None
        message: Message[Any] = _NO_MESSAGE  # bound for the failure paths below
        try:
            if self._actor_inputs is not None:
                self._actor_inputs.start()
            if cls._actor_custom_setup:
                await self.mainloop_setup()
            record = self._actor_record
            if record is not None and record.restarted:
                record.restarted = False
                await self.post_restart(record.reason)
            loop = asyncio.get_running_loop()
            if loop is not alarms.last_loop:
                incarnation.watch_loop(self, loop)
            budget = cls.mailbox_throughput  # the class's, read at each batch: no local kept
            while True:
                queue = mailbox.queue  # NO_QUEUE until the first item comes (see Mailbox.queued)
                if not queue:
                    if self._actor_stopping:  # see `stop`: set while nothing was queued
                        break
                    # Idle: nothing kept of the last message (payload, asker, reply); a bare Future.
                    budget, message, sender, result = cls.mailbox_throughput, _NO_MESSAGE, None, None
                    waiter = mailbox.waiting = Future(loop=loop)
                    await waiter
                    queue = mailbox.queue
                elif budget <= 0:
                    # Fair scheduling: after `throughput` messages in a row, the other tasks run.
                    budget = cls.mailbox_throughput
                    await asyncio.sleep(0)
                if self._actor_stopping:  # stopped while it waited, or before what is queued
                    break
                # Counted per batch, not per message: the drain loop below costs what it did.
                batch = len(queue)
                if batch > budget:
                    if batch >= mailbox.depth_alarm:  # at most once per `throughput` messages
                        incarnation.mailbox_depth(self, batch)
                    batch = budget
                budget -= batch
                try:
                    # A range only for a batch of more: a wake-up for one message (a sender yields, an
                    # ask) skips making one (callgrind, per ask: 62,000 -> 60,200 instructions).
                    for _ in range(batch) if batch > 1 else _ONCE:
                        try:
                            message = queue.popleft()
                        except IndexError:  # taken out meanwhile (Mailbox.withdraw): nothing left
                            break
                        if putters is not None:  # bounded: a user message taken out frees room
                            mailbox.taken(message)
                        message_type = type(message)
                        handler = dispatch.get(message_type)
                        if handler is None:
                            handler = dispatch[message_type] = resolve_handler(
                                cls._actor_handlers, message_type, fallback
                            )
                        sender = message.sender
                        if type(sender) is not AskRef:
                            await handler(self, message)
                            continue
                        # Serving an ask: the rule is in _ask.py (settle, abandon, fail).
                        handoffs = sender.handoffs
                        try:
                            result = await handler(self, message)
                        except EndMainLoop:
                            sender.abandon(handoffs, self.identifier, message)
                            raise
                        except Exception as error:
                            incarnation.ask_failed(self, message, sender, error)
                        except BaseException as error:  # a cancellation, or a handler's own?
                            if not incarnation.ask_interrupted(self, message, sender, handoffs, error):
                                raise
                        else:
                            if sender.settle(result, handoffs, handler is fallback):
                                if self._actor_held is None:
                                    self._actor_held = HeldAsks()
                                self._actor_held.hold(sender, handoffs)
                except EndMainLoop:
                    raise
                except Exception as error:
                    if not incarnation.failed(self, message, error):
                        raise
                except asyncio.CancelledError as error:  # the actor's, or a handler's own?
                    if not incarnation.told_interrupted(self, message, error):
                        raise
        except EndMainLoop:
            pass
        except asyncio.CancelledError as error:
            if not self._actor_stopping:
                reason = error
                raise
        except BaseException as error:
            reason = error
            if type(error) is not GeneratorExit:  # closed, not failed: see `incarnation.can_await`
                incarnation.log_failure(self, error)
            raise
        finally:
            # Inline rather than a helper coroutine: one coroutine less per actor lifetime.
            outcome = "stop" if self._actor_record is None else incarnation.outcome_of(self, reason)
            try:
                incarnation.close(self, outcome, reason)
                if type(reason) is not GeneratorExit or incarnation.can_await(self, reason):
                    try:
                        if outcome == "restart":
                            await self.pre_restart(incarnation.restart_reason(self, reason))
                        if cls._actor_custom_teardown:
                            await self.mainloop_teardown()
                    finally:
                        if self._actor_inputs or self._actor_children:
                            await incarnation.release(self)
            except BaseException as error:  # a failed teardown, not a stop's timeout: logged, watchers told
                if not (self._actor_stopping and isinstance(error, asyncio.CancelledError)):
                    reason = incarnation.teardown_failed(self, reason, error)  # (see its docstring)
                    raise
            finally:
                try:
                    if outcome != "restart":
                        notify_watchers(mailbox, self._actor_ref, reason)
                finally:  # even if a watcher's reference raised: stoppers wait for this
                    incarnation.ended(self)


def is_actor_class(value: object) -> TypeGuard[type[Actor[Any]]]:
    """True if ``value`` is `Actor` or a subclass of it (the one test of "an actor class")."""
    return isinstance(value, type) and issubclass(value, Actor)


Actor._actor_fallback = Actor.handle_message
Actor._actor_dispatch = dict(incarnation.SIGNALS)
