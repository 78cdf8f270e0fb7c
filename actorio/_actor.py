"""The actor: one asyncio task that drains a mailbox and dispatches each message to its handler."""

# pyright: reportPrivateUsage=false
# See _ref.py: an Actor and its ActorRef share their framework attributes.

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, ClassVar, Generic, NoReturn, TypeVar, overload

from ._dispatch import Handler, build_handler_table, check_protocol, protocol_of, resolve_handler
from ._exceptions import ActorStopped, EndMainLoop, UnhandledMessage
from ._mailbox import Mailbox
from ._message import NO_REPLY, Message
from ._protocol import ProtocolAttribute, check_wire_names
from ._ref import ActorRef, AskRef
from ._sender import dead_letters_logger
from ._types import P, R, Request

__all__ = ["Actor"]

Q = TypeVar("Q", bound=Message[Any])
M = TypeVar("M", bound=Message[Any])

_actor_serials = itertools.count(1)
_logger = logging.getLogger("actorio.actor")


class _StopSignal:
    """Put ahead of the mailbox by `Actor.stop`: the mainloop ends when it reaches it."""

    __slots__ = ()
    sender = None


_STOP = _StopSignal()


def _end_mainloop(actor: Actor[Any], signal: _StopSignal) -> NoReturn:
    # A plain function: it raises at the call, before any coroutine is made.
    raise EndMainLoop()


class _InputSignal:
    """Queued in the mailbox when an input task or a child is done: its handler runs in turn with
    the messages, so never while one is being handled, and the mainloop checks nothing extra
    per message."""

    __slots__ = ("run",)
    sender = None

    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        self.run = run


async def _run_input(actor: Actor[Any], signal: _InputSignal) -> None:
    await signal.run()


_SIGNALS: dict[type, Handler] = {_StopSignal: _end_mainloop, _InputSignal: _run_input}
"""What every actor class's dispatch cache starts with."""


class _InputTask:
    """A task registered with `Actor.register_input_task`, and how often it runs again."""

    __slots__ = ("factory", "handler", "remaining", "task")

    def __init__(
        self,
        factory: Callable[[], Awaitable[Any]],
        handler: Callable[[asyncio.Task[Any]], Awaitable[Any]],
        remaining: int | None,
    ) -> None:
        self.factory = factory
        self.handler = handler
        self.remaining = remaining
        self.task: asyncio.Task[Any] | None = None


class Actor(Generic[P]):
    """An actor: state owned by one asyncio task that handles one message at a time.

    Declare handlers with ``@handles(MessageType)`` on ``async def`` methods; a message goes to the
    handler of the nearest class in its MRO, else to `handle_message` (which, unless overridden,
    raises `UnhandledMessage`). ``P``, the protocol, is the union of accepted message types.

    Guarantees:

    - One task per actor and no task per message: messages are handled one at a time, in the
      order they were told by each sender. Input-task handlers (`register_input_task`) and
      `handle_child_stopped` run in the same task, never while a message is being handled.
    - A handler serving an ask answers it with its return value (``None`` included) unless it
      told the sender something first or handed the message on. A handler that raises while
      serving an ask raises at the asker, and the actor carries on.
    - An exception while handling a told message (or in an input-task handler) stops the actor
      with that error: ``await actor`` raises it, and the parent's `handle_child_stopped` sees it.
    - When the actor stops, asks still queued (or held unanswered) fail at once with
      `ActorStopped`, then `mainloop_teardown` stops the children in reverse start order.
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
        "__weakref__",
    )

    _actor_handlers: ClassVar[dict[type, Handler]] = {}
    _actor_dispatch: ClassVar[dict[type, Handler]] = {}
    _actor_accepts: ClassVar[dict[type, bool]] = {}
    _actor_protocol: ClassVar[tuple[type, ...] | None] = None
    _actor_fallback: ClassVar[Handler]
    _actor_custom_setup: ClassVar[bool] = False
    _actor_custom_teardown: ClassVar[bool] = False

    protocol = ProtocolAttribute()
    """The class's protocol as data (an `ActorProtocol`): its message types with their wire names,
    reply types and handlers; validates wire payloads and exports JSON Schema. Made on first use."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._actor_handlers = build_handler_table(cls)
        cls._actor_fallback = cls.handle_message
        cls._actor_protocol = protocol_of(cls, Actor)
        if cls._actor_protocol is not None:
            overridden = cls.handle_message is not Actor.handle_message
            check_protocol(cls, cls._actor_handlers, cls._actor_protocol, overridden)
        check_wire_names(cls)
        cls._actor_dispatch = dict(_SIGNALS)
        cls._actor_accepts = {}
        # Skipping the base class's empty hooks saves two coroutines per actor lifetime.
        cls._actor_custom_setup = cls.mainloop_setup is not Actor.mainloop_setup
        cls._actor_custom_teardown = cls.mainloop_teardown is not Actor.mainloop_teardown

    def __init__(self, *, identifier: str | None = None) -> None:
        self._actor_mailbox = Mailbox()
        self._actor_ref: ActorRef[P] = ActorRef(self)
        self._actor_task: asyncio.Task[None] | None = None
        self._actor_closed = False
        self._actor_serial = next(_actor_serials)
        self._actor_identifier = identifier
        self._actor_logger: logging.LoggerAdapter[logging.Logger] | None = None
        self._actor_stopping = False
        # Created only when used: every byte counts a hundred thousand times.
        self._actor_inputs: list[_InputTask] | None = None
        self._actor_children: dict[Actor[Any], None] | None = None
        self._actor_held: list[tuple[AskRef, int]] | None = None
        self._actor_waiters: list[asyncio.Future[None]] | None = None

    # -- identity -------------------------------------------------------------------------

    @property
    def identifier(self) -> str:
        """This actor's name: the one given to ``__init__``, else ``ClassName-<serial>``."""
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

    def _actor_dead_letter(self, message: Any) -> None:
        sender = getattr(message, "sender", None)
        if type(sender) is AskRef and sender.fail(ActorStopped(self.identifier, message)):
            return
        dead_letters_logger.info("dead letter: %r sent to stopped actor %s", message, self.identifier)

    async def tell(self, message: P, /) -> None:
        """Tell this actor ``message``; the same as ``self.reference.tell(message)``."""
        self._actor_ref.tell_nowait(message)

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
        told to ``message.sender``. By default it logs and raises `UnhandledMessage` (at the
        asker, for an ask; for a told message the actor carries on).
        """
        self.logger.warning("unhandled message %r", message)
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
        """True once the actor accepts no more messages."""
        return self._actor_closed

    async def start(self) -> ActorRef[P]:
        """Start the mainloop task and return this actor's reference.

        Messages told before `start` are queued and handled once it runs. Raises
        ``RuntimeError`` if the actor was already started.
        """
        if self._actor_task is not None or self._actor_closed:
            raise RuntimeError(f"{self!r} was already started")
        self._actor_task = task = asyncio.get_running_loop().create_task(self._actor_mainloop())
        task.add_done_callback(self._actor_task_done)
        return self._actor_ref

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the actor and wait until its mainloop and teardown are over.

        The message being handled is finished; messages still queued are not handled (asks among
        them fail at once with `ActorStopped`). With ``timeout``, a handler still running after that
        many seconds is cancelled. Called from the actor's own handler, it returns at once and the
        actor stops after that handler. Does not raise the actor's own failure: ``await actor``
        does. Stopping a stopped actor does nothing.
        """
        task = self._actor_task
        if task is None:
            self._actor_close()
            return
        if task.done():
            return
        self._actor_stopping = True
        self._actor_mailbox.put_first(_STOP)
        if asyncio.current_task() is task:
            return
        if timeout is None:
            await self._actor_done_waiter()
            return
        try:
            await asyncio.wait_for(self._actor_done_waiter(), timeout)
        except asyncio.TimeoutError:
            task.cancel()
            if not task.done():
                await self._actor_done_waiter()

    def _actor_done_waiter(self) -> asyncio.Future[None]:
        """Wait until the mainloop and teardown are over, without raising the actor's error.

        The caller being cancelled cancels only its wait, not the actor. The mainloop wakes its
        waiters as its last step, so that they resume one loop iteration earlier than a done
        callback would let them (a third of the cost of spawn + stop); `_actor_task_done`
        covers a task cancelled before it ever ran. A future rather than a coroutine: one
        coroutine less per stop. Call it only while the task is not done.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._actor_waiters is None:
            self._actor_waiters = []
        self._actor_waiters.append(waiter)
        return waiter

    async def wait(self) -> None:
        """Wait until the mainloop ends; raise the exception that ended it, if any."""
        if self._actor_task is None:
            raise RuntimeError(f"{self!r} was not started")
        await self._actor_task

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    async def run_until_stopped(self) -> None:
        """Start the actor if needed, then wait until it stops (see `wait`)."""
        if self._actor_task is None:
            await self.start()
        await self.wait()

    async def __aenter__(self) -> ActorRef[P]:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        task = self._actor_task
        if exc is None and task is not None and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    async def mainloop_setup(self) -> None:
        """Run in the actor's task before the first message. Override and call ``super()``."""

    async def mainloop_teardown(self) -> None:
        """Run in the actor's task after it stopped: cancels input tasks, stops children in reverse
        start order. Override and call ``super()`` (if an override does not, the actor still
        cancels its input tasks and stops its children after it)."""
        await self._actor_release()

    async def _actor_release(self) -> None:
        """Cancel the input tasks and stop the children, newest first. Idempotent."""
        inputs, self._actor_inputs = self._actor_inputs, None
        if inputs:
            tasks = [entry.task for entry in inputs if entry.task is not None]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
        if self._actor_children:
            for child in reversed(list(self._actor_children)):
                await child.stop()

    # -- children -------------------------------------------------------------------------

    async def register_child(self, child: Actor[Q]) -> ActorRef[Q]:
        """Start ``child`` as a child of this actor and return its reference.

        When it stops, `handle_child_stopped` runs in this actor's task. Children still running
        when this actor stops are stopped, in reverse start order.
        """
        if self._actor_children is None:
            self._actor_children = {}
        self._actor_children[child] = None
        reference = await child.start()
        assert child._actor_task is not None
        child._actor_task.add_done_callback(functools.partial(self._actor_child_done, child))
        return reference

    @property
    def children(self) -> list[Actor[Any]]:
        """The running children, in start order."""
        return list(self._actor_children or ())

    def _actor_child_done(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        if self._actor_closed:
            if self._actor_children is not None:
                self._actor_children.pop(child, None)
            return
        self._actor_mailbox.put(_InputSignal(functools.partial(self._actor_child_stopped, child, task)))

    async def _actor_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        if self._actor_children is not None:
            self._actor_children.pop(child, None)
        await self.handle_child_stopped(child, task)

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        """Called in this actor's task when a registered child has stopped.

        ``task`` is the child's mainloop task: ``task.exception()`` is the error it failed with.
        By default that error is raised here, so the parent fails with it too (it is not hidden);
        override to decide otherwise.
        """
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    # -- input tasks ----------------------------------------------------------------------

    def register_input_task(
        self,
        factory: Callable[[], Awaitable[Any]],
        handler: Callable[[asyncio.Task[Any]], Awaitable[Any]],
        count: int | None = None,
    ) -> None:
        """Run ``factory()`` as a task; when it is done, call ``await handler(task)`` in the actor.

        The handler never runs while a message is being handled. Then ``factory()`` runs again,
        ``count`` times in all (forever if ``None``). Tasks still running when the actor stops are
        cancelled.
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        entry = _InputTask(factory, handler, count)
        if self._actor_inputs is None:
            self._actor_inputs = []
        self._actor_inputs.append(entry)
        if self._actor_task is not None:
            self._actor_schedule_input(entry)

    def _actor_schedule_input(self, entry: _InputTask) -> None:
        entry.task = task = asyncio.ensure_future(entry.factory())
        task.add_done_callback(functools.partial(self._actor_input_done, entry))

    def _actor_input_done(self, entry: _InputTask, task: asyncio.Task[Any]) -> None:
        if self._actor_closed:
            if not task.cancelled():
                task.exception()  # retrieved: the actor that wanted it is gone
            return
        self._actor_mailbox.put(_InputSignal(functools.partial(self._actor_run_input, entry)))

    async def _actor_run_input(self, entry: _InputTask) -> None:
        task = entry.task
        assert task is not None
        entry.task = None
        await entry.handler(task)
        if entry.remaining is not None:
            entry.remaining -= 1
            if entry.remaining == 0:
                if self._actor_inputs is not None:
                    self._actor_inputs.remove(entry)
                return
        self._actor_schedule_input(entry)

    # -- the mainloop ---------------------------------------------------------------------

    async def _actor_mainloop(self) -> None:
        """The actor's task: setup, then handle what the mailbox holds until the loop ends, then
        close and tear down.

        One coroutine does it all (no helper coroutine for the loop, none per ask): each frame
        costs about 300 bytes per idle actor, and a coroutine per ask about 0.5 us.
        """
        cls = type(self)
        mailbox = self._actor_mailbox
        queue = mailbox.queue
        popleft = queue.popleft
        dispatch = cls._actor_dispatch
        fallback = cls._actor_fallback
        try:
            for entry in self._actor_inputs or ():
                if entry.task is None:
                    self._actor_schedule_input(entry)
            if cls._actor_custom_setup:
                await self.mainloop_setup()
            loop = asyncio.get_running_loop()
            while True:
                if not queue:
                    await mailbox.waiter(loop)
                try:
                    while queue:
                        message: Message[Any] = popleft()
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
                        handoffs = sender.handoffs
                        try:
                            result = await handler(self, message)
                        except EndMainLoop:
                            self._actor_abandon(message, sender, handoffs)
                            raise
                        except Exception as error:
                            self._actor_ask_failed(message, sender, error)
                        except BaseException:
                            self._actor_abandon(message, sender, handoffs)
                            raise
                        else:
                            if sender.handoffs == handoffs and not sender.future.done():
                                if handler is fallback or result is NO_REPLY:
                                    self._actor_hold(sender, handoffs)
                                else:
                                    sender.future.set_result(result)
                except UnhandledMessage:
                    continue
        except EndMainLoop:
            pass
        except asyncio.CancelledError:
            if not self._actor_stopping:
                raise
        except BaseException:
            self.logger.exception("%s failed", self.identifier)
            raise
        finally:
            self._actor_close()
            try:
                if cls._actor_custom_teardown:
                    await self.mainloop_teardown()
                if self._actor_inputs or self._actor_children:
                    await self._actor_release()
            finally:
                self._actor_wake_waiters()

    def _actor_task_done(self, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step never ran the mainloop's ``finally``: close the
        actor (failing its queued asks) and wake whoever waits for it to stop."""
        if not self._actor_closed:
            self._actor_close()
        self._actor_wake_waiters()

    def _actor_wake_waiters(self) -> None:
        """Resume every `stop` waiting for the mainloop to be over."""
        waiters, self._actor_waiters = self._actor_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _actor_ask_failed(self, message: Message[Any], ask: AskRef, error: Exception) -> None:
        """A handler serving an ask raised: the error goes to the asker, and the actor carries on."""
        if not ask.fail(error) and not isinstance(error, UnhandledMessage):
            self.logger.error(
                "%s failed serving an ask that is already over", type(message).__name__, exc_info=error
            )

    def _actor_abandon(self, message: Message[Any], ask: AskRef, handoffs: int) -> None:
        """The actor ends (EndMainLoop, cancellation) while serving an ask: unless the ask was
        answered or handed on, it fails now rather than waiting for its timeout."""
        if ask.handoffs == handoffs:
            ask.fail(ActorStopped(self.identifier, message))

    def _actor_hold(self, ask: AskRef, handoffs: int) -> None:
        """The original style: ``handle_message`` returned without replying; whatever it tells the
        sender later is the reply, and if the actor stops first (and the ask was not handed on
        meanwhile) the ask fails."""
        if self._actor_held is None:
            self._actor_held = []
        self._actor_held.append((ask, handoffs))

    def _actor_close(self) -> None:
        """Accept no more messages; fail the asks that are queued or held unanswered."""
        self._actor_closed = True
        queue = self._actor_mailbox.queue
        while queue:
            message = queue.popleft()
            if type(message) not in _SIGNALS:
                self._actor_dead_letter(message)
        held, self._actor_held = self._actor_held, None
        for ask, handoffs in held or ():
            if ask.handoffs == handoffs:
                ask.fail(ActorStopped(self.identifier))


Actor._actor_fallback = Actor.handle_message
Actor._actor_dispatch = dict(_SIGNALS)
