"""A strict test runtime: the event loop runs in debug mode, warnings are errors (pyproject),
and every test has a global timeout (pyproject)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from actorio import dead_letters

# Read by asyncio each time a loop is created: every test's loop runs in debug mode.
os.environ["PYTHONASYNCIODEBUG"] = "1"


@pytest.fixture(autouse=True)
def fresh_dead_letters() -> Iterator[None]:
    """Each test starts with no dead letters recorded, and leaves none to the next."""
    dead_letters.clear()
    yield
    dead_letters.clear()
