"""Worker processes for the NATS tests: started, awaited ready, and always cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A running worker process (see `worker`)."""

    def __init__(self, process: asyncio.subprocess.Process, name: str = "") -> None:
        self.process = process
        self.name = name
        """What the worker printed after ``ready`` (an entity host: its node id)."""

    def kill(self) -> None:
        """``kill -9``."""
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)

    def pause(self) -> None:
        """``kill -STOP``: the process stops running, its connections stay open."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """``kill -CONT``."""
        os.kill(self.process.pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def worker(
    *args: str, ready_timeout: float = 20.0, module: str = "tests.nats_support.worker"
) -> AsyncIterator[Worker]:
    """Start ``python -m tests.nats_support.worker ARGS`` (or ``module``); yield once it printed
    ``ready`` (``ready NAME``: the worker's `Worker.name`); on exit close its stdin (it drains and
    exits), killing it if it has not exited within 5 s (resumed first, if paused)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        assert line == b"ready\n" or line.startswith(b"ready "), f"the worker did not start: {line!r}"
        yield Worker(process, line.decode().strip()[len("ready ") :])
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGCONT)
        if process.returncode is None and process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.02) -> None:
    """Poll ``check`` until it is true; ``AssertionError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(interval)  # polling interval, bounded by the deadline


async def kill_halfway(
    senders: asyncio.Future[Any],
    half: asyncio.Event,
    victim: Worker,
    deadline: float,
    progress: Callable[[], str],
) -> tuple[float, float]:
    """Wait until ``half`` is set (the senders are half-way), then ``kill -9`` ``victim``: the
    wall-clock time and the loop's time of the kill. A sender's error ends the wait at once
    (raised here) rather than leaving the count short until ``deadline``; short at the deadline,
    the test fails with ``progress()``."""
    halfway = asyncio.ensure_future(half.wait())
    waited: list[asyncio.Future[Any]] = [halfway, senders]
    await asyncio.wait(waited, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    if not halfway.done():
        halfway.cancel()
        if senders.done():
            senders.result()  # the sender's error
        raise AssertionError(f"{progress()} within {deadline} s")
    victim.kill()
    return time.time(), asyncio.get_running_loop().time()
