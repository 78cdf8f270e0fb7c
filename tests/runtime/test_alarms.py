"""The always-on alarms: a handler holding the event loop, a mailbox growing past its
thresholds, a restart logged as one WARNING line."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from actorio import Actor, Message, SupervisorStrategy, handles
from actorio._incarnation import RESTART_LOG_LIMIT, _restarts
from actorio.lowlevel import AlarmSettings, actor_of, alarm_settings, configure_alarms
from actorio.testing import MockClock, MockClockEventLoop

ALARMS = "actorio.alarms"


class Block(Message):
    pass


class Ping(Message):
    pass


class Sync(Message[int]):
    pass


class _Seen(logging.Handler):
    """Sets an event when the alarm logger writes a line (from the watchdog's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.event.set()


@pytest.fixture
def seen() -> Iterator[_Seen]:
    handler = _Seen()
    logger = logging.getLogger(ALARMS)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def settings() -> Iterator[AlarmSettings]:
    previous = alarm_settings()
    yield previous
    configure_alarms(
        slow_handler=previous.slow_handler,
        mailbox_depths=previous.mailbox_depths,
        restart_traceback_level=previous.restart_traceback_level,
        repeat_after=previous.repeat_after,
    )


class Blocker(Actor[Block | Ping | Sync]):
    def __init__(self, seen: _Seen) -> None:
        super().__init__(identifier="blocker")
        self.seen = seen
        self.waited: list[bool] = []
        self.count = 0

    @handles(Block)
    async def block(self, message: Block) -> None:
        # Holds the loop (a blocking call, no await) until the watchdog has reported it, at least
        # 300 ms; at most 10 s, so that a missing alarm fails the test instead of hanging it.
        self.waited.append(self.seen.event.wait(10))
        threading.Event().wait(0.3)

    @handles(Ping)
    async def ping(self, message: Ping) -> None:
        self.count += 1

    @handles(Sync)
    async def sync(self, message: Sync) -> int:
        return self.count


@pytest.mark.asyncio
async def test_a_handler_holding_the_loop_is_reported_with_its_actor_and_message(seen: _Seen) -> None:
    async with Blocker(seen) as ref:
        await ref.tell(Block())
        await ref.ask(Sync())
    assert seen.event.is_set()
    # Only Block holds the loop (on a starved machine another handler could be caught too).
    (line,) = [line for line in seen.lines if "handling Block" in line]
    assert "blocker (Blocker)" in line
    assert "handling Block" in line
    assert "held the event loop" in line


def _spin(seconds: float) -> None:
    """Hold the loop's thread, running Python (as a busy handler does), for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Short(Actor[Ping]):
    @handles(Ping)
    async def ping(self, message: Ping) -> None:
        _spin(0.001)


@pytest.mark.asyncio
async def test_a_burst_of_short_handlers_in_one_turn_of_the_loop_blames_none(seen: _Seen) -> None:
    """400 actors each handle one message of 1 ms in the same turn of the loop: the loop is held
    for 400 ms, by no handler in particular."""
    actors = [Short() for _ in range(400)]
    refs = [await actor.start() for actor in actors]
    for ref in refs:
        ref.tell_nowait(Ping())  # each actor's task is woken for the same turn
    await asyncio.sleep(0)
    await asyncio.gather(*(actor.stop() for actor in actors))
    assert [line for line in seen.lines if "held the event loop" in line] == []


class Lingering(Actor[Ping | Sync]):
    """Handles its messages at once, then holds the loop in its teardown: runtime time, no handler's."""

    @handles(Ping)
    async def ping(self, message: Ping) -> None:
        pass

    @handles(Sync)
    async def sync(self, message: Sync) -> int:
        return 0

    async def mainloop_teardown(self) -> None:
        _spin(0.4)


@pytest.mark.asyncio
async def test_time_after_the_last_message_is_not_blamed_on_it(seen: _Seen) -> None:
    """The mainloop's variable still holds the last message handled: it is not the culprit."""
    async with Lingering() as ref:
        await ref.tell(Ping())
        await ref.ask(Sync())
    assert [line for line in seen.lines if "held the event loop" in line] == []


@pytest.mark.asyncio
async def test_a_handler_is_reported_after_a_hold_that_was_not_one(seen: _Seen) -> None:
    """A callback that is no actor's holds the loop first, then, in the same turn, a handler
    does: the handler is reported (the watchdog keeps looking through the hold)."""
    async with Blocker(seen) as ref:
        asyncio.get_running_loop().call_soon(_spin, 0.3)
        ref.tell_nowait(Block())  # its actor's turn comes after the callback's
        await ref.ask(Sync())
    assert [line for line in seen.lines if "blocker (Blocker)" in line and "handling Block" in line]


def test_the_watchdog_leaves_a_mock_clock_idle_for_its_autojump() -> None:
    """The watchdog posts no beat while the loop waits for I/O: a mock clock that jumps after
    0.2 s of idleness jumps (a beat every 50 ms kept it from ever being idle)."""

    class Sleeper(Actor[Ping]):
        def __init__(self, done: asyncio.Future[float]) -> None:
            super().__init__()
            self.done = done

        async def mainloop_setup(self) -> None:
            self.start_timer("wake", Ping(), 10.0)

        @handles(Ping)
        async def ping(self, message: Ping) -> None:
            self.done.set_result(asyncio.get_running_loop().time())

    async def main() -> float:
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        actor = Sleeper(done)
        await actor.start()
        try:
            return await done
        finally:
            await actor.stop()

    loop = MockClockEventLoop(MockClock(autojump_threshold=0.2))
    guard = threading.Timer(10.0, lambda: loop.call_soon_threadsafe(loop.stop))  # a bound, not a wait
    guard.start()
    try:
        assert loop.run_until_complete(main()) == 10.0
    finally:
        guard.cancel()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.mark.asyncio
async def test_the_same_slow_handler_is_reported_once_a_minute(seen: _Seen) -> None:
    blocker = Blocker(seen)
    async with blocker as ref:
        await ref.tell(Block())
        await ref.ask(Sync())
        assert blocker.waited == [True]
        await ref.tell(Block())  # the event is set already: it holds the loop 300 ms again
        await ref.ask(Sync())
    assert len([line for line in seen.lines if "handling Block" in line]) == 1


@pytest.mark.asyncio
async def test_the_slow_handler_alarm_can_be_turned_off(seen: _Seen, settings: AlarmSettings) -> None:
    configure_alarms(slow_handler=None)
    assert alarm_settings().slow_handler is None

    class Quick(Actor[Ping]):
        @handles(Ping)
        async def ping(self, message: Ping) -> None:
            pass

    async with Quick() as ref:
        await ref.tell(Ping())
    assert seen.lines == []


@pytest.mark.asyncio
async def test_a_flooded_mailbox_is_warned_once_per_threshold(seen: _Seen) -> None:
    blocker = Blocker(seen)
    async with blocker as ref:
        for _ in range(100_001):
            ref.tell_nowait(Ping())
        assert await ref.ask(Sync()) == 100_001
        for _ in range(20_000):  # passes 10k again: not warned twice
            ref.tell_nowait(Ping())
        assert await ref.ask(Sync()) == 120_001
    depth = [line for line in seen.lines if "mailbox of blocker" in line]
    assert len(depth) == 2
    assert "passed 10000 queued messages" in depth[0]
    assert "passed 100000 queued messages" in depth[1]


@pytest.mark.asyncio
async def test_mailbox_thresholds_are_configurable(seen: _Seen, settings: AlarmSettings) -> None:
    configure_alarms(mailbox_depths=(1500,))
    blocker = Blocker(seen)
    async with blocker as ref:
        for _ in range(2000):
            ref.tell_nowait(Ping())
        assert await ref.ask(Sync()) == 2000
    assert [line for line in seen.lines if "passed 1500 queued" in line]


def test_alarm_settings_are_checked(settings: AlarmSettings) -> None:
    with pytest.raises(ValueError, match="mailbox_depths"):
        configure_alarms(mailbox_depths=())
    with pytest.raises(ValueError, match="slow_handler"):
        configure_alarms(slow_handler=0)
    assert alarm_settings() == settings


class Fail(Message):
    pass


class Fragile(Actor[Fail | Sync]):
    @handles(Fail)
    async def fail(self, message: Fail) -> None:
        raise RuntimeError("boom by design")

    @handles(Sync)
    async def sync(self, message: Sync) -> int:
        return 1


class Parent(Actor[Sync]):
    @handles(Sync)
    async def sync(self, message: Sync) -> int:
        return 0


async def _fail_once(caplog: pytest.LogCaptureFixture) -> None:
    async with Parent() as parent_ref:
        from actorio.lowlevel import actor_of

        parent = actor_of(parent_ref)
        assert parent is not None
        child = await parent.supervise(Fragile, name="fragile")
        await child.tell(Fail())
        assert await child.ask(Sync()) == 1  # the new incarnation answers


@pytest.mark.asyncio
async def test_a_restart_logs_one_warning_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="actorio")
    caplog.set_level(logging.WARNING, logger="actorio.actor")
    await _fail_once(caplog)
    lines = [r for r in caplog.records if r.name == "actorio.actor"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].getMessage() == "fragile failed and is restarted: RuntimeError('boom by design')"
    assert lines[0].exc_info is None


@pytest.mark.asyncio
async def test_a_restarted_failures_traceback_is_at_the_level_chosen(
    caplog: pytest.LogCaptureFixture, settings: AlarmSettings
) -> None:
    configure_alarms(restart_traceback_level=logging.INFO)
    caplog.set_level(logging.INFO, logger="actorio.actor")
    await _fail_once(caplog)
    lines = [r for r in caplog.records if r.name == "actorio.actor"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.INFO]
    assert lines[1].exc_info is not None
    assert "boom by design" in caplog.text


@pytest.mark.asyncio
async def test_a_failure_past_the_restart_intensity_is_not_announced_as_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The second failure under ``max_restarts=1`` ends the supervisor (RestartIntensityExceeded):
    its line says so, with the traceback, rather than "is restarted"."""
    from actorio import RestartIntensityExceeded

    caplog.set_level(logging.WARNING, logger="actorio.actor")

    class Strict(Actor[Sync]):
        supervisor_strategy = SupervisorStrategy(max_restarts=1, within=60)

        @handles(Sync)
        async def sync(self, message: Sync) -> int:
            return 0

    parent = Strict()
    await parent.start()
    child = await parent.supervise(Fragile, name="fragile-strict")
    await child.tell(Fail())
    assert await child.ask(Sync()) == 1  # restarted once
    await child.tell(Fail())
    with pytest.raises(RestartIntensityExceeded):
        await asyncio.wait_for(parent.wait(), 10)
    lines = [r for r in caplog.records if r.getMessage().startswith("fragile-strict failed")]
    assert [(r.levelno, r.exc_info is not None) for r in lines] == [
        (logging.WARNING, False),
        (logging.ERROR, True),
    ], [r.getMessage() for r in lines]
    assert lines[0].getMessage() == "fragile-strict failed and is restarted: RuntimeError('boom by design')"
    assert lines[1].getMessage() == (
        "fragile-strict failed, past its supervisor's restart intensity (1 in 60 s): not restarted"
    )


class _Many(Fragile):
    """Fragile's handlers, a class of its own: restart lines are limited per class."""


@pytest.mark.asyncio
async def test_restart_lines_are_limited_per_actor_class(caplog: pytest.LogCaptureFixture) -> None:
    """Thirty children of one class failing (as many entities of a type, told one failing
    message each) log RESTART_LOG_LIMIT lines, not thirty; another class still gets its own."""
    caplog.set_level(logging.WARNING, logger="actorio.actor")
    _restarts.pop(_Many, None)  # a window of its own, whatever ran before
    _restarts.pop(Fragile, None)

    class Lenient(Actor[Message]):
        supervisor_strategy = SupervisorStrategy(max_restarts=100)

    async with Lenient() as parent_ref:
        parent = actor_of(parent_ref)
        assert parent is not None
        children = [await parent.supervise(_Many, name=f"many-{i}") for i in range(30)]
        for child in children:
            await child.tell(Fail())
        for child in children:
            assert await child.ask(Sync()) == 1  # restarted: its failure was logged, or counted
    await _fail_once(caplog)
    restarts = [r for r in caplog.records if "failed and is restarted" in r.getMessage()]
    assert len([r for r in restarts if r.getMessage().startswith("many-")]) == RESTART_LOG_LIMIT
    assert len([r for r in restarts if r.getMessage().startswith("fragile")]) == 1
    assert all(getattr(r, "actor", None) for r in restarts)  # the actor's adapter logged them


def test_the_count_of_lines_left_out_names_what_they_were(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit that is one of many on its logger (one per actor class for restarts) names what
    it left out in its count line."""
    import types

    from actorio import _log_limit

    now = [100.0]
    monkeypatch.setattr(_log_limit, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    caplog.set_level(logging.WARNING, logger="test.limit")
    limit = _log_limit.LogLimit(logging.getLogger("test.limit"), limit=1, window=60.0, about="restarts of X")
    assert [limit.log(logging.WARNING, "line %d", n) for n in range(3)] == [True, False, False]
    now[0] += 60.0
    assert limit.log(logging.WARNING, "line %d", 3)
    assert [r.getMessage() for r in caplog.records] == [
        "line 0",
        "2 more like this (restarts of X) were not logged in the last 60 s",
        "line 3",
    ]


def test_printable_escapes_what_could_drive_a_terminal_or_forge_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from actorio import dead_letters
    from actorio.lowlevel import printable

    assert printable("plain text, é") == "plain text, é"
    assert printable("a\x1b[2J\nb\u202e") == "a\\x1b[2J\\nb\\u202e"
    assert printable("a\nb\tc\x07", keep="\n\t") == "a\nb\tc\\x07"
    caplog.set_level(logging.INFO, logger="actorio.dead_letters")
    dead_letters.clear()
    dead_letters.record(Sync(), "key\x1b]0;TITLE\x07\nFORGED", "stopped")
    [line] = [r.getMessage() for r in caplog.records if r.name == "actorio.dead_letters"]
    assert "\x1b" not in line
    assert "\n" not in line
    assert "key\\x1b]0;TITLE" in line


@pytest.mark.asyncio
async def test_failures_serving_asks_already_over_are_logged_within_a_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Callers giving up (cancelled, timed out) while the handler they asked then fails: an
    overload would log one error with its traceback each; the process logs LATE_ASK_LOG_LIMIT."""
    from actorio._incarnation import LATE_ASK_LOG_LIMIT

    caplog.set_level(logging.ERROR, logger="actorio.actor")  # the plugin resets the limits per test
    gate = asyncio.Event()

    class Backend(Actor[Sync]):
        @handles(Sync)
        async def sync(self, message: Sync) -> int:
            await gate.wait()
            raise ValueError("backend down")

    async with Backend() as backend:
        asks = [asyncio.ensure_future(backend.ask(Sync())) for _ in range(3 * LATE_ASK_LOG_LIMIT)]
        await asyncio.sleep(0)  # each ask queued
        for ask in asks:
            ask.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
        gate.set()
        with pytest.raises(ValueError, match="backend down"):  # after every abandoned one
            await asyncio.wait_for(backend.ask(Sync()), 10)
    late = [r for r in caplog.records if "already over" in r.getMessage()]
    assert len(late) == LATE_ASK_LOG_LIMIT
    assert all(r.exc_info is not None for r in late)
