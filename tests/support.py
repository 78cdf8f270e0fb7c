"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

BOUND = 10.0
"""Seconds that any wait in a test may take at most (virtual seconds under a MockClock)."""


async def bounded(awaitable: Awaitable[T], timeout: float = BOUND) -> T:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout)
