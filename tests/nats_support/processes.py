"""Worker processes for the NATS tests: started, awaited ready, and always cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A running worker process (see `worker`)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    def kill(self) -> None:
        """``kill -9``."""
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def worker(*args: str, ready_timeout: float = 20.0) -> AsyncIterator[Worker]:
    """Start ``python -m tests.nats_support.worker ARGS``; yield once it printed ``ready``; on exit
    close its stdin (it drains and exits), killing it if it has not exited within 5 s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.nats_support.worker",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        assert line == b"ready\n", f"the worker did not start: {line!r}"
        yield Worker(process)
    finally:
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
