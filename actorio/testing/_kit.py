"""ActorTestKit: the actors of one test, stopped afterwards, and what the test must not leave behind."""

from __future__ import annotations

import asyncio
import os
import traceback
import weakref
from types import TracebackType
from typing import Any, TypeVar

from .. import Actor, ActorRef, DeadLetter, Message, dead_letters
from ..lowlevel import task_of
from ._describe import describe
from ._probe import DEFAULT_NO_MESSAGE_WITHIN, DEFAULT_TIMEOUT

__all__ = ["ActorTestKit", "DeadLetter"]

Q = TypeVar("Q", bound=Message[Any])
_ASYNCIO_DIRECTORY = os.path.dirname(asyncio.__file__) + os.sep


def _describe_letter(letter: DeadLetter) -> str:
    because = f": {letter.error!r}" if letter.error is not None else ""
    return f"{describe(letter.message)} for {letter.recipient} ({letter.reason}{because})"


def _unnoticed(task: asyncio.Task[Any]) -> bool:
    """True if the task's exception was never retrieved (asyncio would log it when collected).

    asyncio keeps that flag on every task, as ``_log_traceback``; ``await task``,
    ``task.result()`` and ``task.exception()`` clear it.
    """
    return bool(getattr(task, "_log_traceback", True))


def _created_at(task: asyncio.Task[Any]) -> str:
    """Where the task was created, when asyncio's debug mode recorded it."""
    stack: list[traceback.FrameSummary] = getattr(task, "_source_traceback", None) or []
    for frame in reversed(stack):
        if not frame.filename.startswith(_ASYNCIO_DIRECTORY):
            return f", created at {frame.filename}:{frame.lineno}"
    return ""


class ActorTestKit:
    """Starts the actors of one test, stops them afterwards, and reports what went wrong unnoticed.

    Use it as ``async with ActorTestKit() as kit:``, or through the ``actor_kit`` fixture of
    actorio's pytest plugin. `shutdown` (run on exit) stops the actors it spawned, newest first,
    then raises ``AssertionError`` listing every problem:

    - an actor it spawned crashed and the test did not notice: nothing retrieved the error
      (``await actor`` in ``pytest.raises``, ``probe.expect_terminated(ref, error=...)``, a
      parent's ``handle_child_stopped``, ``async with``);
    - an actor did not stop within ``stop_timeout`` seconds (its handler is then cancelled);
    - a task created while the kit was running is still running ``settle_timeout`` seconds after
      the actors stopped (it is then cancelled);
    - a message went to dead letters while the test ran (``actorio.dead_letters``; not the
      messages whose handler failed: the failure is what counts, as a crash or to a supervisor),
      unless the test took it with `take_dead_letters` or set ``allow_dead_letters``. Messages
      still queued when `shutdown` stops the actors are not counted.

    The timeouts are in the loop's time: virtual, and spent at once, under a `MockClock`.
    """

    def __init__(
        self,
        *,
        allow_dead_letters: bool = False,
        stop_timeout: float = DEFAULT_TIMEOUT,
        settle_timeout: float = DEFAULT_NO_MESSAGE_WITHIN,
    ) -> None:
        self.allow_dead_letters = allow_dead_letters
        """If true, dead letters are recorded but are not a problem."""
        self.stop_timeout = stop_timeout
        """Seconds each actor has to stop at `shutdown` before its handler is cancelled."""
        self.settle_timeout = settle_timeout
        """Seconds that tasks left running at `shutdown` have to finish before they are a problem."""
        self._actors: list[Actor[Any]] = []
        self._dead_letters: list[DeadLetter] = []
        self._baseline: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._state = "new"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start recording: the tasks running now are not this test's, dead letters from now on are.

        `spawn` and ``async with`` call it; calling it again does nothing. ``RuntimeError`` once
        the kit was shut down.
        """
        if self._state == "running":
            return
        if self._state == "closed":
            raise RuntimeError("this ActorTestKit was shut down; create another")
        self._baseline.update(asyncio.all_tasks())
        dead_letters.add_listener(self._on_dead_letter)
        self._state = "running"

    async def __aenter__(self) -> ActorTestKit:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown(check=exc is None)

    async def spawn(self, actor: Actor[Q]) -> ActorRef[Q]:
        """Start ``actor`` and return its reference; `shutdown` stops it.

        ``RuntimeError`` if the actor was already started, or the kit was shut down.
        """
        await self.start()
        reference = await actor.start()
        self._actors.append(actor)
        return reference

    @property
    def actors(self) -> list[Actor[Any]]:
        """The actors this kit spawned, in spawn order."""
        return list(self._actors)

    # -- dead letters ----------------------------------------------------------------------

    def _on_dead_letter(self, letter: DeadLetter) -> None:
        if self._state == "running":
            self._dead_letters.append(letter)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters recorded since the kit started and not yet taken, oldest first."""
        return list(self._dead_letters)

    def take_dead_letters(self) -> list[DeadLetter]:
        """Return the recorded dead letters and forget them: the test expected them."""
        taken, self._dead_letters = self._dead_letters, []
        return taken

    # -- shutdown --------------------------------------------------------------------------

    async def shutdown(self, *, check: bool = True) -> None:
        """Stop the spawned actors (newest first), cancel the tasks left running, stop recording
        dead letters; then, with ``check``, raise ``AssertionError`` listing every problem (see
        the class). Idempotent. With ``check=False`` (the test failed already), it only cleans up.
        """
        __tracebackhide__ = True
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "stopping"
        problems: list[str] = []
        try:
            for actor in reversed(self._actors):
                problem = await self._stop(actor)
                if problem is not None:
                    problems.append(problem)
            problems.extend(self._crashes())
            problems.extend(await self._leftover_tasks())
            lost = [letter for letter in self._dead_letters if letter.reason != "failed"]
            if lost and not self.allow_dead_letters:
                letters = "".join(f"\n    {_describe_letter(letter)}" for letter in lost)
                problems.append(
                    f"{len(lost)} message(s) went to dead letters (take them with "
                    f"kit.take_dead_letters() if the test expects them):{letters}"
                )
        finally:
            self._state = "closed"
            dead_letters.remove_listener(self._on_dead_letter)
            self._baseline.clear()
        if problems and check:
            raise AssertionError("ActorTestKit found:\n- " + "\n- ".join(problems))

    async def _stop(self, actor: Actor[Any]) -> str | None:
        task = task_of(actor)
        if task is None or task.done():
            return None
        stopping = asyncio.ensure_future(actor.stop())
        await asyncio.wait([stopping], timeout=self.stop_timeout)
        if stopping.done():
            stopping.result()
            return None
        task.cancel()
        await asyncio.wait([stopping], timeout=self.stop_timeout)
        if not stopping.done():
            stopping.cancel()
        return f"{actor.identifier} did not stop within {self.stop_timeout:g} s (its handler was cancelled)"

    def _crashes(self) -> list[str]:
        problems: list[str] = []
        for actor in self._actors:
            task = task_of(actor)
            if task is None or not task.done() or task.cancelled() or not _unnoticed(task):
                continue
            error = task.exception()  # retrieved now: asyncio will not log it again
            if error is not None:
                problems.append(
                    f"{actor.identifier} crashed with {error!r}, unnoticed by the test (expect it with "
                    f"`with pytest.raises(...): await actor` or probe.expect_terminated(ref, error=...))"
                )
        return problems

    async def _leftover_tasks(self) -> list[str]:
        current = asyncio.current_task()
        left = {
            task
            for task in asyncio.all_tasks()
            if task is not current and task not in self._baseline and not task.done()
        }
        if left:
            await asyncio.wait(left, timeout=self.settle_timeout)
            left = {task for task in left if not task.done()}
        if not left:
            return []
        names = "".join(f"\n    {task!r}{_created_at(task)}" for task in left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=self.stop_timeout)
        for task in left:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the problem is reported here, not when it is collected
        return [f"{len(left)} task(s) left running (now cancelled):{names}"]
