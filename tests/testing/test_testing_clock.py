"""actorio.testing.MockClock: virtual time that moves only when told, or jumps when every task is blocked.

The hour-long scenarios check both the virtual times (exact) and the real time spent (a small
fraction of a second).
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from typing import Any

import pytest

from actorio import Actor, Message, ask, handles
from actorio.testing import ActorTestKit, MockClock, MockClockEventLoop

HOUR = 3600.0
MINUTE = 60.0
REAL_BUDGET = 5.0  # seconds of real time an hour-long scenario may take: far from an hour, and
# far from what two busy workers on a busy machine need for 60 ticks (about 0.01 s idle)


class Tick(Message):
    pass


class Ticks(Message[int]):
    pass


class Park(Message[str]):
    pass


class Ticker(Actor[Ticks]):
    """Counts one tick per virtual minute, with an input task that sleeps a minute, sixty times."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[float] = []
        self.register_input_task(lambda: asyncio.sleep(MINUTE), self.on_tick, count=60)

    async def on_tick(self, task: asyncio.Task[Any]) -> None:
        self.ticks.append(asyncio.get_running_loop().time())

    @handles(Ticks)
    async def count(self, msg: Ticks) -> int:
        return len(self.ticks)


class Parked(Actor[Park]):
    """Never answers: its handler waits for an event that nobody sets."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    @handles(Park)
    async def park(self, msg: Park) -> str:
        await self.release.wait()
        return "released"


def running_clock() -> MockClock:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, MockClockEventLoop)
    return loop.clock


# -- the hour-long periodic scenarios -----------------------------------------------------------


@pytest.mark.asyncio
async def test_an_hour_of_minute_ticks_with_autojump(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def every_minute() -> None:
        for _ in range(60):
            await asyncio.sleep(MINUTE)
            ticks.append(loop.time())

    started = time.perf_counter()
    await every_minute()
    real = time.perf_counter() - started

    assert ticks == [MINUTE * n for n in range(1, 61)]
    assert loop.time() == HOUR
    assert real < REAL_BUDGET


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_an_hour_of_minute_ticks_with_advance(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def forever_every_minute() -> None:
        while True:
            await asyncio.sleep(MINUTE)
            ticks.append(loop.time())

    ticker = asyncio.create_task(forever_every_minute())
    started = time.perf_counter()
    await mock_clock.advance(HOUR)
    real = time.perf_counter() - started
    ticker.cancel()

    assert ticks == [MINUTE * n for n in range(1, 61)]
    assert mock_clock.time() == HOUR
    assert real < REAL_BUDGET


@pytest.mark.asyncio
async def test_an_hour_of_call_later_ticks(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    done = loop.create_future()

    def tick() -> None:
        ticks.append(loop.time())
        if len(ticks) < 60:
            loop.call_later(MINUTE, tick)
        else:
            done.set_result(None)

    loop.call_later(MINUTE, tick)
    started = time.perf_counter()
    await done
    assert time.perf_counter() - started < REAL_BUDGET
    assert ticks == [MINUTE * n for n in range(1, 61)]


@pytest.mark.asyncio
async def test_an_actor_ticking_every_minute_for_an_hour(
    actor_kit: ActorTestKit, mock_clock: MockClock
) -> None:
    actor = Ticker()
    ticker = await actor_kit.spawn(actor)
    started = time.perf_counter()
    await mock_clock.advance(HOUR)
    assert await ask(ticker, Ticks(), timeout=1) == 60
    assert time.perf_counter() - started < REAL_BUDGET
    assert actor.ticks == [MINUTE * n for n in range(1, 61)]


# -- timeouts and backoff, exactly -----------------------------------------------------------


@pytest.mark.asyncio
async def test_wait_for_times_out_at_the_exact_virtual_time(mock_clock: MockClock) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), timeout=90)
    assert mock_clock.time() == 90


@pytest.mark.asyncio
async def test_an_ask_times_out_at_the_exact_virtual_time(
    actor_kit: ActorTestKit, mock_clock: MockClock
) -> None:
    actor = Parked()
    parked = await actor_kit.spawn(actor)
    started = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        await ask(parked, Park(), timeout=30)
    assert mock_clock.time() == 30
    assert time.perf_counter() - started < REAL_BUDGET
    actor.release.set()  # the handler finishes; its late reply is for an ask that is over
    assert await ask(parked, Park(), timeout=30) == "released"  # after the first handler
    (late,) = actor_kit.take_dead_letters()
    assert (late.message, late.reason) == ("released", "late-reply")


@pytest.mark.asyncio
async def test_exponential_backoff_retries_at_exact_times(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(loop.time())
        if len(attempts) < 5:
            raise ConnectionError("not yet")
        return "connected"

    async def with_backoff() -> str:
        delay = 0.5
        while True:
            try:
                return await flaky()
            except ConnectionError:
                await asyncio.sleep(delay)
                delay *= 2

    assert await with_backoff() == "connected"
    assert attempts == [0.0, 0.5, 1.5, 3.5, 7.5]


@pytest.mark.asyncio
@pytest.mark.mock_clock(start=1000.0)
async def test_the_marker_sets_the_start_time() -> None:
    loop = asyncio.get_running_loop()
    assert loop.time() == 1000.0
    await asyncio.sleep(5)
    assert loop.time() == 1005.0
    assert running_clock().autojump_threshold == 0.0


# -- manual time: jump, advance, wait_all_tasks_blocked ----------------------------------------


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_manual_time_moves_only_when_told(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    loop.call_later(10, lambda: fired.append(loop.time()))

    await mock_clock.wait_all_tasks_blocked()
    assert fired == []
    assert mock_clock.time() == 0

    mock_clock.jump(9.5)
    await mock_clock.wait_all_tasks_blocked()
    assert fired == []

    mock_clock.jump(1)
    await mock_clock.wait_all_tasks_blocked()
    assert fired == [10.5]  # it fired late: jump() moves time at once, past the deadline


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_jump_ticks_a_periodic_loop_once_and_advance_every_period(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def every_minute() -> None:
        while True:
            await asyncio.sleep(MINUTE)
            ticks.append(loop.time())

    ticker = asyncio.create_task(every_minute())
    await mock_clock.wait_all_tasks_blocked()
    mock_clock.jump(10 * MINUTE)
    await mock_clock.wait_all_tasks_blocked()
    assert ticks == [10 * MINUTE]

    await mock_clock.advance(3 * MINUTE)
    assert ticks == [10 * MINUTE, 11 * MINUTE, 12 * MINUTE, 13 * MINUTE]
    ticker.cancel()


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_advance_fires_timers_in_deadline_order_at_their_deadlines(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []

    def fire(name: str) -> None:
        fired.append((name, loop.time()))

    for name, delay in [("c", 3.0), ("a", 1.0), ("exactly at the end", 5.0), ("b", 2.0), ("later", 5.5)]:
        loop.call_later(delay, fire, name)

    await mock_clock.advance(5)
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 3.0), ("exactly at the end", 5.0)]
    assert mock_clock.time() == 5
    await mock_clock.advance(0)
    assert mock_clock.time() == 5


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_advance_with_fractional_deadlines_is_exact(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    for _ in range(10):
        loop.call_later(0.1, lambda: fired.append(loop.time()))
        await mock_clock.advance(0.1)
    assert len(fired) == 10
    assert fired[2] == 0.1 + 0.1 + 0.1  # the timer's own deadline, not time() + timeout
    assert mock_clock.time() == fired[-1]


@pytest.mark.asyncio
async def test_wait_all_tasks_blocked_lets_every_task_run_first(mock_clock: MockClock) -> None:
    steps: list[int] = []

    async def busy() -> None:
        for step in range(100):
            steps.append(step)
            await asyncio.sleep(0)

    task = asyncio.create_task(busy())
    await mock_clock.wait_all_tasks_blocked()
    assert task.done()
    assert steps == list(range(100))
    assert mock_clock.time() == 0


@pytest.mark.asyncio
async def test_clock_misuse_is_refused(mock_clock: MockClock) -> None:
    with pytest.raises(ValueError, match="time cannot go backwards"):
        mock_clock.jump(-1)
    with pytest.raises(ValueError, match="time cannot go backwards"):
        await mock_clock.advance(-1)
    with pytest.raises(ValueError, match="autojump_threshold must be >= 0"):
        mock_clock.autojump_threshold = -0.5
    with pytest.raises(ValueError, match="autojump_threshold must be >= 0"):
        MockClock(autojump_threshold=math.nan)
    with pytest.raises(RuntimeError, match="already drives another event loop"):
        MockClockEventLoop(mock_clock)
    assert mock_clock.loop is asyncio.get_running_loop()
    assert repr(mock_clock) == "<MockClock time=0.0 autojump_threshold=0.0>"

    mock_clock.autojump_threshold = math.inf
    first = asyncio.create_task(mock_clock.advance(10))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already running"):
        await mock_clock.advance(1)
    await first
    assert mock_clock.time() == 10


def test_a_clock_is_awaited_only_in_its_own_loop() -> None:
    clock = MockClock()
    with pytest.raises(RuntimeError, match="must be awaited in the loop that runs on this clock"):
        asyncio.run(clock.advance(1))
    with pytest.raises(RuntimeError, match="must be awaited in the loop"):
        asyncio.run(clock.wait_all_tasks_blocked())


# -- real I/O and threads ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ready_io_is_handled_before_time_jumps(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        right.sendall(b"ping")
        later = loop.call_later(100, lambda: None)  # a timer that autojump could jump to
        data = await asyncio.wait_for(loop.sock_recv(left, 4), timeout=50)
        later.cancel()
    assert data == b"ping"
    assert mock_clock.time() == 0


@pytest.mark.asyncio
async def test_another_thread_wakes_the_loop(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[str] = loop.create_future()
    thread = threading.Thread(target=loop.call_soon_threadsafe, args=(woken.set_result, "woken"))
    thread.start()
    try:
        assert await woken == "woken"  # no timer: the loop blocks on real I/O until the thread writes
    finally:
        thread.join(timeout=10)
    assert mock_clock.time() == 0


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=0.01)
async def test_a_positive_threshold_waits_real_time_before_jumping(mock_clock: MockClock) -> None:
    started = time.perf_counter()
    await asyncio.sleep(HOUR)
    assert mock_clock.time() == HOUR
    assert time.perf_counter() - started >= 0.01


@pytest.mark.asyncio
async def test_the_default_executor_still_works(mock_clock: MockClock) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, sum, [1, 2, 3]) == 6


@pytest.mark.parametrize("start", [1.7e7, 1_796_626_573.0, 1e15])
def test_timers_fire_at_large_virtual_times(start: float) -> None:
    """Past about 1.7e7 s a float no longer changes by asyncio's clock resolution (1e-9 s): a timer
    due exactly when time was put (a jump to it, ``call_later(0)``) must still run, at its time."""
    clock = MockClock(start, autojump_threshold=0)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen: list[float] = []
        loop.call_later(0, lambda: seen.append(loop.time()))
        await asyncio.sleep(5)  # autojump: time put exactly at the deadline
        seen.append(loop.time())
        clock.autojump_threshold = math.inf
        loop.call_later(60, lambda: seen.append(loop.time()))
        await clock.advance(120)  # advance: to each deadline, then to its end
        seen.append(loop.time())
        clock.jump(60)
        loop.call_later(0, lambda: seen.append(loop.time()))
        await clock.wait_all_tasks_blocked()
        return seen

    loop = MockClockEventLoop(clock)
    try:
        seen = loop.run_until_complete(asyncio.wait_for(main(), HOUR))
    finally:
        loop.close()
    assert seen == [start, start + 5, start + 65, start + 125, start + 185]


def test_a_mock_clock_loop_outside_pytest() -> None:
    clock = MockClock(autojump_threshold=0)

    async def main() -> float:
        await asyncio.sleep(HOUR)
        return asyncio.get_running_loop().time()

    loop = MockClockEventLoop(clock)
    try:
        assert loop.run_until_complete(main()) == HOUR
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert clock.time() == HOUR
    assert clock.loop is loop


@pytest.mark.asyncio
async def test_other_asyncio_tests_keep_the_default_loop() -> None:
    assert not isinstance(asyncio.get_running_loop(), MockClockEventLoop)
