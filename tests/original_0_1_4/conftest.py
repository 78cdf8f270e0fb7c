"""The harness of actorio 0.1.4's tests, modernized: its fixtures, as pytest-asyncio runs them
today (no ``event_loop`` fixture, no ``loop=`` argument to ``asyncio.Queue``).

The tests use the 0.1.4 names (``ActorReference``, ``wait_for``, ``coro_to_run``, the
``actorio.messaging`` module), which warn now: those warnings are expected here, and only here.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
import pytest_asyncio

import actorio

_EXPECTED = r".*actorio 0\.1\.4's (name|module)"

HERE = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """While a test module of this folder is imported: its imports of the 0.1.4 names warn."""
    if not isinstance(collector, pytest.Module) or HERE not in collector.path.parents:
        return (yield)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _EXPECTED, DeprecationWarning)
        return (yield)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """While this folder's tests run: their uses of the 0.1.4 names warn."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings(f"ignore:{_EXPECTED}:DeprecationWarning"))


@pytest_asyncio.fixture
async def loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    yield asyncio.get_running_loop()


@pytest_asyncio.fixture
async def output_queue() -> asyncio.Queue[object]:
    return asyncio.Queue()


@pytest_asyncio.fixture
async def test_reference() -> actorio.Reference:
    return actorio.Reference()
