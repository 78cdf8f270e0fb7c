"""Controllable time: an event loop whose clock moves only when told, or jumps when the loop is idle.

`MockClockEventLoop` is asyncio's selector event loop with two changes, both through public
extension points: ``time()`` returns the `MockClock`'s virtual time, and the loop's selector is
wrapped. The loop asks its selector to block only when it has nothing to run: no ready callback
and no timer due (asyncio passes a positive timeout, or ``None`` when there is no timer). That is
the moment every task is blocked, which the wrapper turns into the clock's idle point: it first
polls real I/O without blocking, then wakes `MockClock.wait_all_tasks_blocked` waiters, moves
time for `MockClock.advance`, or, in autojump mode, jumps time to the next timer.

Everything asyncio schedules by ``loop.time()`` follows the virtual clock: ``asyncio.sleep``,
``call_later`` / ``call_at``, ``asyncio.wait_for`` and ``asyncio.wait`` timeouts, and actorio's
``ask(..., timeout=...)``. ``time.monotonic()`` and ``time.time()`` are real time and do not move.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MockClock", "MockClockEventLoop"]

_Events = list[tuple[selectors.SelectorKey, int]]
_IdleHandler = Callable[[float | None, selectors.BaseSelector], _Events]


class MockClock:
    """Virtual time for one `MockClockEventLoop`: it moves only when told, or when every task is
    blocked (autojump).

    - `jump` moves time forward at once; timers that fall due run on the loop's next iteration,
      in deadline order.
    - `advance` lets time pass step by step: each timer due within the span fires at its own
      deadline, and what it sets off runs before time moves on (a periodic ``sleep`` loop ticks
      once per period).
    - With ``autojump_threshold`` finite, once the loop has been idle for that many real seconds
      (0: at once) and has no I/O ready, time jumps to the next timer. A test of timeouts,
      timers and backoff then takes microseconds of real time and sees exact virtual times.

    Time never goes backwards. A clock belongs to at most one loop.
    """

    __slots__ = ("_now", "_autojump_threshold", "_loop", "_blocked_waiters", "_advance")

    def __init__(self, start: float = 0.0, *, autojump_threshold: float = math.inf) -> None:
        self._now = float(start)
        self._autojump_threshold = math.inf
        self.autojump_threshold = autojump_threshold
        self._loop: MockClockEventLoop | None = None
        self._blocked_waiters: list[asyncio.Future[None]] = []
        self._advance: tuple[float, asyncio.Future[None]] | None = None

    def time(self) -> float:
        """The current virtual time, in seconds: what the loop's ``time()`` returns."""
        return self._now

    @property
    def autojump_threshold(self) -> float:
        """Real seconds the loop waits, idle, before jumping to its next timer.

        ``0``: jump as soon as every task is blocked and no I/O is ready. ``math.inf`` (the
        default of a bare `MockClock`): never jump; time moves only through `jump` and
        `advance`. Settable at any time; a negative value raises ``ValueError``.
        """
        return self._autojump_threshold

    @autojump_threshold.setter
    def autojump_threshold(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"autojump_threshold must be >= 0, not {seconds!r}")
        self._autojump_threshold = float(seconds)

    @property
    def loop(self) -> MockClockEventLoop | None:
        """The loop that runs on this clock, or ``None`` before one was created with it."""
        return self._loop

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` at once.

        Timers that fall due run on the loop's next iteration, in deadline order, each once: a
        ``while True: await asyncio.sleep(60)`` loop sees one tick for ``jump(3600)`` (use
        `advance` to see sixty). Raises ``ValueError`` for a negative ``seconds``.

        In asyncio's debug mode, a jump made inside a task step makes that step look slow
        (asyncio logs "Executing ... took N seconds"); `advance` does not.
        """
        if not seconds >= 0:
            raise ValueError(f"time cannot go backwards: jump({seconds!r})")
        self._now += seconds

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, then return.

        Each time the loop is idle, time moves to the next timer due within the span and that
        timer fires; whatever it sets off runs before time moves again. Returns once no timer
        due by the end of the span is left and every task is blocked again; time is then
        exactly ``start + seconds``. Must be awaited in the clock's loop, one at a time
        (``RuntimeError`` otherwise); a negative ``seconds`` raises ``ValueError``.
        """
        if not seconds >= 0:
            raise ValueError(f"time cannot go backwards: advance({seconds!r})")
        loop = self._running_loop("advance")
        if self._advance is not None:
            raise RuntimeError("MockClock.advance is already running in another task")
        done: asyncio.Future[None] = loop.create_future()
        self._advance = (self._now + seconds, done)
        try:
            await done
        finally:
            self._cancel_advance(done)

    async def wait_all_tasks_blocked(self) -> None:
        """Return once every task of the loop is blocked: no callback is ready, no timer is due
        and no I/O is ready.

        Time does not move meanwhile. Work done in other threads is not waited for (a thread
        that wakes the loop makes it busy again). Must be awaited in the clock's loop.
        """
        loop = self._running_loop("wait_all_tasks_blocked")
        waiter: asyncio.Future[None] = loop.create_future()
        self._blocked_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._blocked_waiters:
                self._blocked_waiters.remove(waiter)

    def __repr__(self) -> str:
        return f"<MockClock time={self._now!r} autojump_threshold={self._autojump_threshold!r}>"

    # -- called by the loop ---------------------------------------------------------------

    def _running_loop(self, what: str) -> MockClockEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._loop is None:
            raise RuntimeError(f"MockClock.{what} must be awaited in the loop that runs on this clock")
        return self._loop

    def _cancel_advance(self, done: asyncio.Future[None]) -> None:
        """`advance` is over (or its caller was cancelled): forget its target."""
        if self._advance is not None and self._advance[1] is done:
            self._advance = None

    def _attach(self, loop: MockClockEventLoop) -> None:
        if self._loop is not None:
            raise RuntimeError(f"{self!r} already drives another event loop")
        self._loop = loop

    def _idle_point(self, deadline: float | None, inner: selectors.BaseSelector) -> _Events:
        """The loop would block: it has nothing to run and no I/O is ready; ``deadline`` is its
        next timer's. Returns the I/O events to hand it (none: it has work now).

        Wakes the blocked-waiters or moves time for `advance`; else, in autojump mode, waits
        ``autojump_threshold`` real seconds for I/O, then jumps to the deadline.
        """
        if self._idle(deadline):
            return []
        threshold = self._autojump_threshold
        if deadline is None or threshold == math.inf:
            # Nothing to jump to, or manual time: only I/O (or another thread) can wake the loop.
            return inner.select(None)
        if threshold > 0:
            events = inner.select(threshold)
            if events:
                return events
        self._now = max(self._now, deadline)
        return []

    def _idle(self, deadline: float | None) -> bool:
        """Every task is blocked and no I/O is ready; ``deadline`` is the next timer's.

        Wakes the blocked-waiters, or moves time for `advance`; True if it did either (the loop
        then has work and must not block).
        """
        if self._blocked_waiters:
            waiters, self._blocked_waiters = self._blocked_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return True
        if self._advance is not None:
            target, done = self._advance
            if deadline is not None and deadline <= target:
                self._now = max(self._now, deadline)
            else:
                self._now = max(self._now, target)
                self._advance = None
                if not done.done():
                    done.set_result(None)
            return True
        return False


class _ClockSelector(selectors.BaseSelector):
    """A selector that hands the loop's idle moments (a blocking ``select``) to the clock."""

    def __init__(self, inner: selectors.BaseSelector, on_idle: _IdleHandler) -> None:
        self._inner = inner
        self._on_idle = on_idle

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> _Events:
        if timeout is not None and timeout <= 0:
            return self._inner.select(timeout)  # the loop has work: a plain poll
        events = self._inner.select(0)
        if events:
            return events
        return self._on_idle(timeout, self._inner)

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class MockClockEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop, running on a `MockClock`'s virtual time.

    ``time()`` is the clock's time; timers, ``asyncio.sleep``, timeouts and actorio's ask
    timeouts follow it. Real I/O is still processed: the loop polls it before treating itself
    as idle, so sockets, pipes, subprocesses and ``call_soon_threadsafe`` wake it as usual.
    With autojump on, time does not wait for work in other threads (``run_in_executor``): a
    timeout around such work expires at once, unless ``autojump_threshold`` leaves it real
    time to finish.

    Create it directly, with ``asyncio.Runner(loop_factory=...)`` (Python 3.11+), or in pytest
    through the ``mock_clock`` fixture or marker of actorio's plugin.
    """

    def __init__(self, clock: MockClock | None = None) -> None:
        self._mock_clock = clock if clock is not None else MockClock()
        super().__init__(_ClockSelector(selectors.DefaultSelector(), self._clock_idle))
        try:
            self._mock_clock._attach(self)  # pyright: ignore[reportPrivateUsage]  # the clock's other half
        except RuntimeError:
            self.close()  # a loop that was created must be closed, even one refused its clock
            raise

    @property
    def clock(self) -> MockClock:
        """The clock this loop runs on."""
        return self._mock_clock

    def time(self) -> float:
        """The clock's virtual time (see `MockClock`)."""
        return self._mock_clock.time()

    # asyncio runs a timer once ``when < time() + _clock_resolution`` (the monotonic clock's
    # resolution, 1e-9 s). Past about 1.7e7 s of virtual time, adding 1e-9 to a float no longer
    # changes it: a timer due exactly now (where a jump puts time) would never run, and the loop
    # would spin with a zero timeout. The resolution is therefore at least one step of the float
    # at the current virtual time (a real clock's values stay far below that magnitude).
    @property
    def _clock_resolution(self) -> float:
        return max(self._base_resolution, math.ulp(self._mock_clock.time()))

    @_clock_resolution.setter
    def _clock_resolution(self, seconds: float) -> None:  # set by asyncio's __init__
        self._base_resolution = seconds

    async def shutdown_default_executor(self, *args: Any) -> None:
        """As asyncio's, with autojump off meanwhile: joining the executor's threads takes real
        time, and a jump would expire the timeout that Python 3.12+ puts on that join."""
        self._mock_clock.autojump_threshold = math.inf
        await super().shutdown_default_executor(*args)

    def _deadline(self, timeout: float | None) -> float | None:
        """The deadline of the timer that made the loop block for ``timeout``, exactly.

        asyncio computes ``timeout`` as ``when - time()``, capped at one day; adding it back
        to ``time()`` can be off by a rounding step, so the deadline is read from the timer
        itself (the head of the loop's heap, whose cancelled entries the loop has just
        dropped), when the loop exposes it.
        """
        if timeout is None:
            return None
        scheduled: list[asyncio.TimerHandle] | None = getattr(self, "_scheduled", None)
        if scheduled:
            return scheduled[0].when()
        return self._mock_clock.time() + timeout

    def _clock_idle(self, timeout: float | None, inner: selectors.BaseSelector) -> _Events:
        return self._mock_clock._idle_point(self._deadline(timeout), inner)  # pyright: ignore[reportPrivateUsage]
