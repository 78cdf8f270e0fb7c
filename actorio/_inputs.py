"""What an actor runs in turn with its messages besides them: input tasks, deferred calls and
barriers.

- `InputSignal`: a call queued in the mailbox (an input task is done, a child stopped, a restart
  is due): the mainloop runs it in turn with the messages, so never while one is being handled,
  and checks nothing extra per message.
- `InputTasks`: the tasks registered with `Actor.register_input_task`, each run again as often
  as asked, its handler called through an `InputSignal`.
- `Barrier`: a future done once the actor has handled everything queued before it (``True``),
  or once that incarnation ended first (``False``): how code outside the actor waits until what
  it told has been handled (``actorio.lowlevel.barrier``).
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from ._mailbox import Signal

if TYPE_CHECKING:
    from ._actor import Actor
    from ._mailbox import Mailbox

__all__ = [
    "Barrier",
    "InputHandler",
    "InputSignal",
    "InputTask",
    "InputTasks",
    "input_handler",
    "run_barrier",
    "run_input",
]

InputHandler: TypeAlias = "Callable[[asyncio.Task[Any]], Awaitable[Any]]"
"""What `Actor.register_input_task` calls with each input task that is done."""


def input_handler(
    handler: InputHandler | None, coro_to_run: InputHandler | None, count: int | None
) -> InputHandler:
    """The handler of `Actor.register_input_task`'s arguments, checked: ``coro_to_run`` (actorio
    0.1.4's name for ``handler``) warns; neither or both is a ``TypeError``, a ``count`` below 1 a
    ``ValueError``."""
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    if coro_to_run is not None:
        if handler is not None:
            raise TypeError("register_input_task() takes handler or coro_to_run (its old name), not both")
        warnings.warn(
            "register_input_task(coro_to_run=...) is actorio 0.1.4's name: pass the handler as handler=",
            DeprecationWarning,
            stacklevel=3,
        )
        return coro_to_run
    if handler is None:
        raise TypeError("register_input_task() missing its handler (the second argument)")
    return handler


class InputSignal(Signal):
    """A call (``run``) queued in the mailbox, run by the mainloop in turn with the messages."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        self.run = run


async def run_input(actor: Actor[Any], signal: InputSignal) -> None:
    """The mainloop's handler of an `InputSignal`."""
    await signal.run()


class Barrier(Signal):
    """Queued behind what was told so far; ``future`` gets ``True`` when the mainloop reaches it,
    ``False`` if the incarnation ends first."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[bool]) -> None:
        self.future = future

    def dropped(self) -> None:
        if not self.future.done():
            self.future.set_result(False)


async def run_barrier(actor: Actor[Any], signal: Barrier) -> None:
    """The mainloop's handler of a `Barrier`: everything queued before it is handled."""
    if not signal.future.done():
        signal.future.set_result(True)


class InputTask:
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


class InputTasks:
    """An actor's input tasks: started with the mainloop, their handlers queued in the mailbox when
    they are done, cancelled when the actor stops."""

    __slots__ = ("_mailbox", "_entries", "_closed")

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox
        self._entries: list[InputTask] = []
        self._closed = False

    def rebind(self, mailbox: Mailbox) -> None:
        """Queue the handlers in ``mailbox`` from now on (a restarted child's, which its supervisor
        keeps across incarnations, rather than the one its new incarnation was made with)."""
        self._mailbox = mailbox

    def add(
        self,
        factory: Callable[[], Awaitable[Any]],
        handler: Callable[[asyncio.Task[Any]], Awaitable[Any]],
        count: int | None,
        running: bool,
    ) -> None:
        """Register an input task; start it now if the actor is ``running``."""
        entry = InputTask(factory, handler, count)
        self._entries.append(entry)
        if running:
            self._schedule(entry)

    def start(self) -> None:
        """The mainloop starts: run every input task not running yet."""
        for entry in self._entries:
            if entry.task is None:
                self._schedule(entry)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def _schedule(self, entry: InputTask) -> None:
        entry.task = task = asyncio.ensure_future(entry.factory())
        task.add_done_callback(functools.partial(self._done, entry))

    def _done(self, entry: InputTask, task: asyncio.Task[Any]) -> None:
        if self._closed:
            if not task.cancelled():
                task.exception()  # retrieved: the actor that wanted it is gone
            return
        self._mailbox.append(InputSignal(functools.partial(self._run, entry)))

    async def _run(self, entry: InputTask) -> None:
        task = entry.task
        assert task is not None
        entry.task = None
        await entry.handler(task)
        if entry.remaining is not None:
            entry.remaining -= 1
            if entry.remaining == 0:
                if entry in self._entries:
                    self._entries.remove(entry)
                return
        self._schedule(entry)

    def close(self) -> None:
        """The incarnation closed: a task done from now on is not handled (its error, if any, is
        retrieved)."""
        self._closed = True

    async def cancel_all(self) -> None:
        """The actor stops: cancel the running tasks and wait until they are done. Idempotent."""
        self._closed = True
        entries, self._entries = self._entries, []
        tasks = [entry.task for entry in entries if entry.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
