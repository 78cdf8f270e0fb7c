"""Timers: an actor's keyed one-shot and periodic timers (`Actor.start_timer` and friends).

A timer fires on the loop's clock and queues a `TimerSignal` in the actor's mailbox; the signal
delivers the timer's message only if that timer is still the one started under its key, so a
replaced or cancelled timer's tick is dropped even when it was already queued (as Akka's keyed
timers). An actor creates its `Timers` on its first timer: most actors have none.
"""

# pyright: reportPrivateUsage=false
# `schedule` starts an actor's timers in its framework slots: the actor and its timers are one unit.

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from ._mailbox import Signal
from ._ref import check_message

if TYPE_CHECKING:
    from ._actor import Actor
    from ._mailbox import Mailbox
    from ._message import Message

__all__ = ["Timer", "TimerHook", "TimerSignal", "Timers", "add_timer_hook", "remove_timer_hook", "schedule"]

TimerHook = Callable[["Actor[Any]", Hashable, "Message[Any]"], None]
"""What `add_timer_hook` calls when a timer is started: ``(actor, key, message)``."""

_hooks: tuple[TimerHook, ...] = ()


def add_timer_hook(hook: TimerHook) -> None:
    """Call ``hook(actor, key, message)`` in the code that starts a timer (`Actor.start_timer`,
    `Actor.start_periodic_timer`), once the timer is started, from now on: the seam for tracing
    (a timer's message is linked to where the timer was started). Adding a hook twice adds it
    once."""
    global _hooks
    if hook not in _hooks:
        _hooks = (*_hooks, hook)


def remove_timer_hook(hook: TimerHook) -> None:
    """Stop calling ``hook`` (see `add_timer_hook`); nothing happens if it was not added."""
    global _hooks
    _hooks = tuple(h for h in _hooks if h != hook)  # ==: a bound method is made anew at each access


def schedule(actor: Actor[Any], key: Hashable, message: Any, delay: float, interval: float | None) -> None:
    """Start ``actor``'s timer under ``key`` (`Actor.start_timer`, `Actor.start_periodic_timer`)."""
    check_message(message)
    if not actor._actor_closed:
        if actor._actor_timers is None:
            actor._actor_timers = Timers(actor._actor_mailbox)
        actor._actor_timers.start(key, message, delay, interval)
        for hook in _hooks:
            hook(actor, key, message)


class Timer:
    """A timer started by `Actor.start_timer` or `Actor.start_periodic_timer`."""

    __slots__ = ("key", "message", "interval", "deadline", "handle")

    def __init__(self, key: Hashable, message: Message[Any], interval: float | None) -> None:
        self.key = key
        self.message = message
        self.interval = interval
        self.deadline = 0.0
        self.handle: asyncio.TimerHandle | None = None


class TimerSignal(Signal):
    """Queued when a timer fires."""

    __slots__ = ("timer",)

    def __init__(self, timer: Timer) -> None:
        self.timer = timer


class Timers:
    """The timers of one actor incarnation, by key."""

    __slots__ = ("_mailbox", "_timers")

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox
        self._timers: dict[Hashable, Timer] = {}

    def start(self, key: Hashable, message: Message[Any], delay: float, interval: float | None) -> None:
        """Start (or replace) the timer under ``key``: ``message`` after ``delay`` seconds, then
        every ``interval`` seconds (fixed rate) if it is not ``None``."""
        self.cancel(key)
        loop = asyncio.get_running_loop()
        timer = Timer(key, message, interval)
        timer.deadline = loop.time() + max(delay, 0.0)
        timer.handle = loop.call_at(timer.deadline, self._fired, timer)
        self._timers[key] = timer

    def cancel(self, key: Hashable) -> None:
        """Cancel the timer under ``key``, if any; its tick is dropped even if queued."""
        timer = self._timers.pop(key, None)
        if timer is not None and timer.handle is not None:
            timer.handle.cancel()

    def cancel_all(self) -> None:
        """Cancel every timer."""
        timers, self._timers = self._timers, {}
        for timer in timers.values():
            if timer.handle is not None:
                timer.handle.cancel()

    def rebind(self, mailbox: Mailbox) -> None:
        """Tell ticks to ``mailbox`` from now on (a restarted child's, which its supervisor keeps
        across incarnations, rather than the one its new incarnation was made with)."""
        self._mailbox = mailbox

    def __contains__(self, key: Hashable) -> bool:
        return key in self._timers

    def __bool__(self) -> bool:
        return bool(self._timers)

    def take(self, timer: Timer) -> bool:
        """A tick of ``timer`` reached the mainloop: True if it is still the timer under its key
        (a one-shot timer is then over)."""
        if self._timers.get(timer.key) is not timer:
            return False  # replaced or cancelled
        if timer.interval is None:
            del self._timers[timer.key]
        return True

    def _fired(self, timer: Timer) -> None:
        if self._timers.get(timer.key) is not timer:
            return
        if timer.interval is not None:
            timer.deadline += timer.interval
            timer.handle = asyncio.get_running_loop().call_at(timer.deadline, self._fired, timer)
        self._mailbox.append(TimerSignal(timer))
