"""Run a program under the mock clock: ``python virtual_time.py PROGRAM [ARGS...]``.

Every event loop the program makes is a `MockClockEventLoop` that jumps to its next timer as soon
as nothing else can run: a program that sleeps 10 s runs in a moment, unchanged, and its timers
still fire in the order of their deadlines.
"""

from __future__ import annotations

import asyncio
import runpy
import sys

from actorio.testing import MockClock, MockClockEventLoop


class VirtualTime(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return MockClockEventLoop(MockClock(autojump_threshold=0))


if __name__ == "__main__":
    asyncio.set_event_loop_policy(VirtualTime())
    program = sys.argv.pop(1)
    runpy.run_path(program, run_name="__main__")
