"""actorio.testing.ActorTestKit and the pytest plugin's fixtures: actors stopped after the test, and
the test failed for a crash nobody noticed, a task left running, or an unexpected dead letter.

The fixtures' verdicts (a test that errors at teardown) are checked by running pytest on a
generated test file in a subprocess, twice in one session, as a user's suite would run.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from actorio import Actor, ActorStopped, EndMainLoop, Message, dead_letters, handles
from actorio.testing import ActorTestKit, DeadLetter, MockClock, TestProbe
from tests.support import run_python

ROOT = Path(__file__).resolve().parents[2]
DEAD_LETTERS = logging.getLogger("actorio.dead_letters")


class Ping(Message[str]):
    pass


class Crash(Message):
    pass


class Park(Message):
    pass


class Stop(Message):
    pass


class Fragile(Actor[Ping | Crash | Park | Stop]):
    def __init__(self, identifier: str | None = None) -> None:
        super().__init__(identifier=identifier)
        self.parked = asyncio.Event()

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return "pong"

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise ValueError("boom")

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        await asyncio.Event().wait()

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        raise EndMainLoop()


async def crash(kit: ActorTestKit, identifier: str) -> Fragile:
    actor = Fragile(identifier)
    reference = await kit.spawn(actor)
    await reference.tell(Crash())
    with pytest.raises(ActorStopped):
        await reference.ask(Ping(), timeout=5)  # the crash is handled first: the ask fails at once
    return actor


@pytest.mark.asyncio
async def test_spawned_actors_are_stopped_newest_first() -> None:
    stopped: list[str] = []

    class Recorded(Fragile):
        async def mainloop_teardown(self) -> None:
            stopped.append(self.identifier)
            await super().mainloop_teardown()

    async with ActorTestKit() as kit:
        first = await kit.spawn(Recorded("first"))
        await kit.spawn(Recorded("second"))
        assert await first.ask(Ping(), timeout=5) == "pong"
        assert [actor.identifier for actor in kit.actors] == ["first", "second"]
    assert stopped == ["second", "first"]
    assert all(actor.stopped for actor in kit.actors)


@pytest.mark.asyncio
async def test_an_unnoticed_crash_is_reported() -> None:
    kit = ActorTestKit()
    await kit.start()
    await crash(kit, "fragile")
    with pytest.raises(AssertionError) as failure:
        await kit.shutdown()
    assert str(failure.value) == (
        "ActorTestKit found:\n"
        "- fragile crashed with ValueError('boom'), unnoticed by the test (expect it with "
        "`with pytest.raises(...): await actor` or probe.expect_terminated(ref, error=...))"
    )


@pytest.mark.asyncio
async def test_a_noticed_crash_is_not_reported() -> None:
    async with ActorTestKit() as kit:
        awaited = await crash(kit, "awaited")
        with pytest.raises(ValueError, match="boom"):
            await awaited
        expected = await crash(kit, "expected")
        await TestProbe().expect_terminated(expected, error=ValueError)


@pytest.mark.asyncio
async def test_a_task_left_running_is_reported_and_cancelled() -> None:
    kit = ActorTestKit(settle_timeout=0)
    await kit.start()
    left = asyncio.create_task(asyncio.Event().wait(), name="forgotten")
    finishing = asyncio.create_task(asyncio.sleep(0), name="finishing")
    with pytest.raises(
        AssertionError,
        match=r"1 task\(s\) left running \(now cancelled\):\n    <Task pending name='forgotten'",
    ):
        await kit.shutdown()
    assert left.cancelled()
    assert finishing.done()


@pytest.mark.asyncio
async def test_tasks_running_before_the_kit_are_not_its_business() -> None:
    before = asyncio.create_task(asyncio.Event().wait())
    async with ActorTestKit():
        pass
    assert not before.done()
    before.cancel()


@pytest.mark.asyncio
async def test_an_actor_that_does_not_stop_is_reported(mock_clock: MockClock) -> None:
    kit = ActorTestKit()
    await kit.start()
    actor = Fragile("stuck")
    reference = await kit.spawn(actor)
    await reference.tell(Park())
    await actor.parked.wait()
    with pytest.raises(AssertionError, match=r"stuck did not stop within 3 s \(its handler was cancelled\)"):
        await kit.shutdown()
    assert actor.stopped
    assert mock_clock.time() == 3


@pytest.mark.asyncio
async def test_dead_letters_are_reported_unless_taken_or_allowed() -> None:
    kit = ActorTestKit()
    await kit.start()
    actor = Fragile("gone")
    reference = await kit.spawn(actor)
    await reference.tell(Stop())
    await actor.wait()
    await reference.tell(Ping())
    await reference.tell(Crash())
    letters = kit.dead_letters
    assert all(isinstance(letter, DeadLetter) for letter in letters)
    assert [(type(letter.message), letter.recipient, letter.reason) for letter in letters] == [
        (Ping, "gone", "stopped"),
        (Crash, "gone", "stopped"),
    ]
    assert str(letters[0]) == f"{letters[0].message!r} for gone (stopped)"
    with pytest.raises(
        AssertionError,
        match=r"2 message\(s\) went to dead letters .*\n    Ping\(\) for gone \(stopped\)\n    Crash",
    ):
        await kit.shutdown()

    async with ActorTestKit() as taken:
        Message().sender.tell_nowait(Ping())  # told to a message without a sender
        [letter] = taken.take_dead_letters()
        assert (letter.recipient, letter.reason) == ("no-sender", "no-sender")
        assert taken.dead_letters == []

    async with ActorTestKit(allow_dead_letters=True) as allowed:
        Message().sender.tell_nowait(Ping())
        assert len(allowed.dead_letters) == 1


@pytest.mark.asyncio
async def test_messages_still_queued_at_shutdown_are_not_dead_letters_of_the_test() -> None:
    class ReleasedByStop(Actor[Park | Ping]):
        def __init__(self) -> None:
            super().__init__()
            self.parked = asyncio.Event()
            self.release = asyncio.Event()

        @handles(Park)
        async def park(self, msg: Park) -> None:
            self.parked.set()
            await self.release.wait()

        @handles(Ping)
        async def ping(self, msg: Ping) -> str:
            return "pong"

        async def stop(self, timeout: float | None = None) -> None:
            self.release.set()  # the parked handler ends, and the stop signal goes first
            await super().stop(timeout)

    before = dead_letters.counts["stopped"]
    async with ActorTestKit() as kit:
        actor = ReleasedByStop()
        reference = await kit.spawn(actor)
        await reference.tell(Park())
        await actor.parked.wait()
        await reference.tell(Ping())  # queued behind the parked handler; stopping drops it
    assert kit.dead_letters == []
    assert dead_letters.counts["stopped"] == before + 1  # recorded all the same
    assert type(dead_letters.records[-1].message) is Ping


@pytest.mark.asyncio
async def test_the_kit_leaves_the_dead_letters_logger_alone() -> None:
    level, handlers = DEAD_LETTERS.level, list(DEAD_LETTERS.handlers)
    async with ActorTestKit():
        assert DEAD_LETTERS.handlers == handlers
    assert DEAD_LETTERS.level == level
    assert DEAD_LETTERS.handlers == handlers


@pytest.mark.asyncio
async def test_shutdown_without_check_only_cleans_up_and_is_idempotent() -> None:
    kit = ActorTestKit(settle_timeout=0)
    await kit.start()
    await crash(kit, "fragile")
    left = asyncio.create_task(asyncio.Event().wait())
    await kit.shutdown(check=False)
    assert left.cancelled()
    await kit.shutdown()
    with pytest.raises(RuntimeError, match="was shut down"):
        await kit.spawn(Fragile())


@pytest.mark.asyncio
async def test_the_fixture_gives_a_started_kit(actor_kit: ActorTestKit) -> None:
    reference = await actor_kit.spawn(Fragile())
    assert await reference.ask(Ping(), timeout=5) == "pong"


# -- the fixtures' verdicts, in a pytest run of their own --------------------------------------

SCENARIOS = """
import asyncio
import math

import pytest

from actorio import Actor, ActorStopped, Message, handles
from actorio.testing import ActorTestKit, MockClock, TestProbe


class Ping(Message[str]):
    pass


class Crash(Message):
    pass


class Park(Message):
    pass


class Fragile(Actor[Ping | Crash | Park]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return "pong"

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise ValueError("boom")

    @handles(Park)
    async def park(self, msg: Park) -> None:
        await asyncio.Event().wait()


LEFT = []


@pytest.mark.asyncio
async def test_clean(actor_kit: ActorTestKit) -> None:
    reference = await actor_kit.spawn(Fragile())
    assert await reference.ask(Ping()) == "pong"


@pytest.mark.asyncio
async def test_crash_unnoticed(actor_kit: ActorTestKit) -> None:
    reference = await actor_kit.spawn(Fragile())
    await reference.tell(Crash())
    with pytest.raises(ActorStopped):
        await reference.ask(Ping())


@pytest.mark.asyncio
async def test_crash_noticed(actor_kit: ActorTestKit) -> None:
    actor = Fragile()
    await actor_kit.spawn(actor)
    await actor.tell(Crash())
    with pytest.raises(ValueError):
        await actor


@pytest.mark.asyncio
async def test_task_left_running(actor_kit: ActorTestKit) -> None:
    LEFT.append(asyncio.create_task(asyncio.Event().wait(), name="left-behind"))


@pytest.mark.asyncio
async def test_dead_letter(actor_kit: ActorTestKit) -> None:
    actor = Fragile()
    reference = await actor_kit.spawn(actor)
    await actor.stop()
    await reference.tell(Ping())


@pytest.mark.asyncio
async def test_dead_letter_taken(actor_kit: ActorTestKit) -> None:
    actor = Fragile()
    reference = await actor_kit.spawn(actor)
    await actor.stop()
    await reference.tell(Ping())
    assert len(actor_kit.take_dead_letters()) == 1


@pytest.mark.asyncio
async def test_stuck_actor(actor_kit: ActorTestKit, mock_clock: MockClock) -> None:
    reference = await actor_kit.spawn(Fragile())
    await reference.tell(Park())


@pytest.mark.asyncio
async def test_failing_test_reports_only_its_failure(actor_kit: ActorTestKit) -> None:
    LEFT.append(asyncio.create_task(asyncio.Event().wait()))
    await TestProbe(name="inbox").expect_message(Ping, timeout=0)


@pytest.mark.asyncio
@pytest.mark.mock_clock(autojump_threshold=math.inf)
@pytest.mark.asyncio
async def test_marker_without_fixture() -> None:
    assert asyncio.get_running_loop().clock.autojump_threshold == math.inf


def test_mock_clock_outside_an_asyncio_test(mock_clock: MockClock) -> None:
    pass
"""

CONFIG = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers --strict-config -p no:cacheprovider -p no:randomly
filterwarnings = error
"""


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python(directory, "-m", "pytest", *args)


def outcomes(report: Path) -> list[tuple[str, str, str]]:
    """(test name, outcome, message) for each test case of a JUnit XML report, in order."""
    results: list[tuple[str, str, str]] = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind, (element.get("message") or "") + "\n" + (element.text or "")
                break
        results.append((case.get("name", ""), outcome, message))
    return results


def test_fixture_verdicts_in_a_pytest_run_twice(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(CONFIG)
    (tmp_path / "test_scenarios.py").write_text(textwrap.dedent(SCENARIOS))
    report = tmp_path / "report.xml"
    result = run_pytest(
        tmp_path, "--keep-duplicates", "test_scenarios.py", "test_scenarios.py", f"--junitxml={report}"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    results = outcomes(report)
    verdicts = [(name, outcome) for name, outcome, _ in results]
    once = [
        ("test_clean", "passed"),
        ("test_crash_unnoticed", "error"),
        ("test_crash_noticed", "passed"),
        ("test_task_left_running", "error"),
        ("test_dead_letter", "error"),
        ("test_dead_letter_taken", "passed"),
        ("test_stuck_actor", "error"),
        ("test_failing_test_reports_only_its_failure", "failure"),
        ("test_marker_without_fixture", "passed"),
        ("test_mock_clock_outside_an_asyncio_test", "error"),
    ]
    assert verdicts == once + once  # the second run sees nothing left by the first
    messages = {name: message for name, _, message in results}
    assert "Fragile-" in messages["test_crash_unnoticed"]
    assert "crashed with ValueError('boom'), unnoticed by the test" in messages["test_crash_unnoticed"]
    assert re.search(r"1 task\(s\) left running.*left-behind", messages["test_task_left_running"], re.S)
    assert "Ping() for Fragile-" in messages["test_dead_letter"]
    assert "did not stop within 3 s" in messages["test_stuck_actor"]
    assert (
        "inbox expected a Ping within 0 s, but no message arrived"
        in messages["test_failing_test_reports_only_its_failure"]
    )
    assert "ActorTestKit found" not in messages["test_failing_test_reports_only_its_failure"]
    assert (
        "needs the test to run on a MockClockEventLoop" in messages["test_mock_clock_outside_an_asyncio_test"]
    )
    assert "Task was destroyed but it is pending" not in result.stdout + result.stderr
    assert "never retrieved" not in result.stdout + result.stderr


def test_a_bad_marker_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(CONFIG)
    (tmp_path / "test_bad_marker.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            @pytest.mark.mock_clock(autojump_threshold=-1)
            async def test_bad() -> None:
                pass
            """
        )
    )
    result = run_pytest(tmp_path, "test_bad_marker.py")
    assert result.returncode != 0
    assert "mark.mock_clock: autojump_threshold must be >= 0, not -1" in result.stdout + result.stderr


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(tmp_path: Path) -> None:
    """A user's project with plain pytest: each fixture's test errors with the install line, not
    with pytest's "fixture 'actor_kit' not found"."""
    (tmp_path / "test_user.py").write_text(
        "def test_kit(actor_kit: object) -> None:\n    pass\n\n\n"
        "def test_clock(mock_clock: object) -> None:\n    pass\n"
    )
    # pytest-asyncio is installed here: hide it, as if it were not (its own plugin is not loaded;
    # no assertion rewriting, whose import hook comes first and would find it).
    hide = """if True:
        import sys
        import pytest

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "pytest_asyncio":
                    raise ImportError(name)

        sys.meta_path.insert(0, Hide())
        arguments = ["-p", "no:asyncio", "-p", "no:cacheprovider", "-p", "no:randomly", "--assert=plain"]
        sys.exit(pytest.main([*arguments, "--junitxml=report.xml", "test_user.py"]))
    """
    result = run_python(tmp_path, "-c", hide)
    assert result.returncode == 1, result.stdout + result.stderr
    found = outcomes(tmp_path / "report.xml")
    assert [(name, outcome) for name, outcome, _ in found] == [("test_kit", "error"), ("test_clock", "error")]
    for (_, _, message), fixture in zip(found, ("actor_kit", "mock_clock"), strict=True):
        assert (
            f"actorio's {fixture} fixture needs pytest-asyncio 1.4 or newer: "
            "python -m pip install 'pytest-asyncio>=1.4'"
        ) in message


def test_what_one_test_logged_does_not_silence_the_next(tmp_path: Path) -> None:
    """Eleven restarts of a class use up its warnings for the minute (``RESTART_LOG_LIMIT``); the
    plugin starts every log limit again before the next test, which sees its own warning."""
    (tmp_path / "pytest.ini").write_text(CONFIG)
    (tmp_path / "test_logs.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            import logging

            import pytest

            from actorio import Actor, Message, SupervisorStrategy, handles


            class Boom(Message):
                pass


            class Ping(Message[int]):
                pass


            class Fragile(Actor[Boom | Ping]):
                @handles(Boom)
                async def boom(self, msg: Boom) -> None:
                    raise ValueError("boom")

                @handles(Ping)
                async def ping(self, msg: Ping) -> int:
                    return 1


            class Parent(Actor):
                supervisor_strategy = SupervisorStrategy(max_restarts=100, within=60.0)


            async def fail(times: int) -> None:
                parent = Parent()
                async with parent:
                    child = await parent.supervise(Fragile, name="fragile")
                    for _ in range(times):
                        await child.tell(Boom())
                        assert await child.ask(Ping()) == 1  # behind it: the next incarnation answers


            @pytest.mark.asyncio
            async def test_a_first(caplog: pytest.LogCaptureFixture) -> None:
                with caplog.at_level(logging.WARNING, logger="actorio.actor"):
                    await fail(11)


            @pytest.mark.asyncio
            async def test_b_restart_is_logged(caplog: pytest.LogCaptureFixture) -> None:
                with caplog.at_level(logging.WARNING, logger="actorio.actor"):
                    await fail(1)
                assert any("is restarted" in r.getMessage() for r in caplog.records)
            """
        )
    )
    result = run_pytest(tmp_path, "test_logs.py")
    assert result.returncode == 0, result.stdout + result.stderr
