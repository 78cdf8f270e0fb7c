"""actorio's pytest plugin, registered under the name ``actorio`` (the ``pytest11`` entry point).

Fixtures (async: they need pytest-asyncio, 1.4 or newer for ``mock_clock``, and run in the
test's loop, so the test must be an ``@pytest.mark.asyncio`` test with the function loop scope,
the default; without pytest-asyncio, a test using one fails with a message saying to install it):

- ``actor_kit``: an `ActorTestKit`, shut down after the test; its problems (an actor that
  crashed unnoticed, a task left running, an unexpected dead letter) fail the test at teardown.
  When the test itself failed, the kit only cleans up.
- ``mock_clock``: the test runs on a `MockClockEventLoop`; the fixture is its `MockClock`, in
  autojump mode unless the marker says otherwise.

Marker ``@pytest.mark.mock_clock(start=0.0, autojump_threshold=0.0)``: the test runs on a
`MockClockEventLoop` whose clock starts at ``start`` and jumps after ``autojump_threshold`` real
seconds of idleness (``math.inf``: only ``jump``/``advance`` move time). The marker alone is
enough; add the fixture to get the clock.

The loop comes from pytest-asyncio's ``pytest_asyncio_loop_factories`` hook. For the other
asyncio tests the plugin answers with ``asyncio.new_event_loop`` (the loop pytest-asyncio would
create, through the same policy) if no other plugin answers the hook, and stands aside otherwise.
Disable the plugin with ``-p no:actorio``.

Before each test, every `actorio.lowlevel.LogLimit` starts a new window
(`actorio.lowlevel.reset_log_limits`): what one test logged (ten restarts of a class, say) does
not silence the lines the next test looks for.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from actorio.testing import ActorTestKit, MockClock

__all__ = [
    "pytest_asyncio_loop_factories",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
]

MARKER = "mock_clock"
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mock_clock`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(start=0.0, autojump_threshold=0.0): run this asyncio test on an event loop whose "
        "time is an actorio.testing.MockClock (virtual; it jumps to the next timer when every task "
        "is blocked, unless autojump_threshold=math.inf)",
    )


class _MockClockLoopFactory:
    """Creates a `MockClockEventLoop` on a new clock, for one test."""

    def __init__(self, start: float = 0.0, autojump_threshold: float = 0.0) -> None:
        self.start = float(start)
        self.autojump_threshold = float(autojump_threshold)
        if not self.autojump_threshold >= 0:
            raise ValueError(f"autojump_threshold must be >= 0, not {autojump_threshold!r}")

    def __call__(self) -> asyncio.AbstractEventLoop:
        from actorio.testing import MockClock, MockClockEventLoop

        return MockClockEventLoop(MockClock(self.start, autojump_threshold=self.autojump_threshold))

    def __repr__(self) -> str:
        threshold = "math.inf" if math.isinf(self.autojump_threshold) else repr(self.autojump_threshold)
        return f"mock_clock(start={self.start!r}, autojump_threshold={threshold})"


def _wants_mock_clock(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or MARKER in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """pytest-asyncio's hook: a `MockClockEventLoop` for tests that use the ``mock_clock``
    fixture or marker; for the others, asyncio's default loop, unless another plugin answers."""
    if not _wants_mock_clock(item):
        if len(item.ihook.pytest_asyncio_loop_factories.get_hookimpls()) > 1:
            return None
        return {"asyncio": asyncio.new_event_loop}
    marker = item.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError(f"{item.nodeid}: mark.{MARKER} takes keyword arguments only")
    try:
        factory = _MockClockLoopFactory(**options)
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(f"{item.nodeid}: mark.{MARKER}: {error}") from None
    return {MARKER: factory}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start every log limit's window again (see the module's text). Only once actorio's runtime
    is loaded: a test session that never imports it does not load it for this."""
    if "actorio._log_limit" in sys.modules:
        from actorio.lowlevel import reset_log_limits

        reset_log_limits()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the test's call report, so that ``actor_kit`` knows whether the test itself failed."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


try:
    import pytest_asyncio
except ImportError:
    # Without pytest-asyncio the fixtures cannot exist; pytest would say "fixture 'actor_kit' not
    # found" for every test. Say instead what to install.
    _NEEDS = (
        "actorio's {} fixture needs pytest-asyncio 1.4 or newer: python -m pip install 'pytest-asyncio>=1.4'"
    )

    @pytest.fixture(name="mock_clock")
    def _mock_clock_without_pytest_asyncio() -> None:
        pytest.fail(_NEEDS.format("mock_clock"), pytrace=False)

    @pytest.fixture(name="actor_kit")
    def _actor_kit_without_pytest_asyncio() -> None:
        pytest.fail(_NEEDS.format("actor_kit"), pytrace=False)

else:

    @pytest_asyncio.fixture
    async def mock_clock() -> MockClock:
        """The `MockClock` of the loop this test runs on (a `MockClockEventLoop`, autojump on
        unless the ``mock_clock`` marker says otherwise)."""
        from actorio.testing import MockClockEventLoop

        loop = asyncio.get_running_loop()
        if not isinstance(loop, MockClockEventLoop):
            pytest.fail(
                "the mock_clock fixture needs the test to run on a MockClockEventLoop: use it in an "
                "@pytest.mark.asyncio test with the function loop scope, and no other plugin "
                "answering pytest_asyncio_loop_factories first",
                pytrace=False,
            )
        return loop.clock

    @pytest_asyncio.fixture
    async def actor_kit(request: pytest.FixtureRequest) -> AsyncIterator[ActorTestKit]:
        """An `ActorTestKit` for this test; its problems fail the test at teardown."""
        from actorio.testing import ActorTestKit

        kit = ActorTestKit()
        await kit.start()
        yield kit
        # Through Any: how request.node is typed differs between pytest releases.
        item = cast(pytest.Item, cast(Any, request).node)
        report = item.stash.get(_CALL_REPORT, None)
        problems: str | None = None
        try:
            await kit.shutdown(check=report is not None and report.passed)
        except AssertionError as error:
            problems = str(error)
        if problems is not None:
            pytest.fail(problems, pytrace=False)
