"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from actorio import Actor, ActorRef
from actorio.lowlevel import actor_of, mailbox_of

T = TypeVar("T")

BOUND = 10.0
"""Seconds that any wait in a test may take at most (virtual seconds under a MockClock)."""


async def bounded(awaitable: Awaitable[T], timeout: float = BOUND) -> T:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout)


async def await_a_cancelled_task() -> None:
    """Await a task that is cancelled meanwhile: its `CancelledError` comes out of this, in a
    task that nobody cancelled (a handler's own, not its actor's)."""
    inner = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    inner.cancel()
    await inner


def incarnation(ref: ActorRef[Any]) -> Actor[Any]:
    """The actor behind a local reference now (for a supervised child, its current incarnation)."""
    actor = actor_of(ref)
    assert actor is not None, f"{ref!r} is not the reference of a local actor"
    return actor


def queued(ref: ActorRef[Any]) -> int:
    """How many items wait in the mailbox behind a local reference."""
    mailbox = mailbox_of(ref)
    assert mailbox is not None, f"{ref!r} has no local mailbox"
    return len(mailbox)


def run_python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this Python with ``args`` in ``cwd``, output captured as text, at most two minutes; the
    caller checks the return code. Its environment lacks what pytest and pytest-xdist set for
    their own runs (``PYTEST_XDIST_WORKER``, ``PYTEST_CURRENT_TEST``...): a pytest run there is a
    session of its own, not a worker of this one."""
    own = ("PYTEST_XDIST", "PYTEST_CURRENT")
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={key: value for key, value in os.environ.items() if not key.startswith(own)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
