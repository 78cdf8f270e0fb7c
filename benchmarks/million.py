"""One process hosting a million idle actors: how long they take to start, and the memory.

    python -m benchmarks.million                 # 1,000,000 actors
    python -m benchmarks.million --actors 100000

Starts the actors (each its task, mailbox and reference), waits until every one waits on its
mailbox, then reports the time to start them (wall clock, and this process's CPU time, which a
busy machine distorts less), the process's peak resident memory (RSS), and the time to stop
them all. Runs under `actorio.run`'s GC policy, as a program would (``--default-gc``
for CPython's defaults). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from typing import Any

from actorio import Actor, GcPolicy, Message, handles


class Ping(Message[int]):
    n: int


class Idle(Actor[Ping]):
    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return msg.n


def _rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1e3)


async def host(count: int) -> dict[str, Any]:
    """Start ``count`` idle actors, check one answers, stop them; the figures."""
    before = _rss_mb()
    started, started_cpu = time.perf_counter(), time.process_time()
    actors = [Idle() for _ in range(count)]
    refs = [await actor.start() for actor in actors]
    for _ in range(3):  # let every task reach its first wait on its mailbox
        await asyncio.sleep(0)
    start_s = time.perf_counter() - started
    start_cpu_s = time.process_time() - started_cpu
    assert await refs[-1].ask(Ping(n=7)) == 7
    peak = _rss_mb()
    stopping = time.perf_counter()
    for actor in actors:
        await actor.stop()
    return {
        "actors": count,
        "start_s": start_s,
        "start_cpu_s": start_cpu_s,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "bytes_per_actor": (peak - before) * 1e6 / count,
        "stop_s": time.perf_counter() - stopping,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.million", description=__doc__)
    parser.add_argument("--actors", type=int, default=1_000_000)
    parser.add_argument("--default-gc", action="store_true", help="leave the collector at CPython's defaults")
    args = parser.parse_args(argv)
    applied = None if args.default_gc else GcPolicy().apply()
    try:
        if applied is not None:
            applied.started()
        figures = asyncio.run(host(args.actors))
    finally:
        if applied is not None:
            applied.restore()
    figures["gc"] = "default" if args.default_gc else "GcPolicy()"
    gc.collect()
    print(
        f"{figures['actors']:,} idle actors: started in {figures['start_s']:.1f} s "
        f"({figures['start_cpu_s']:.1f} s of CPU), "
        f"peak RSS {figures['peak_rss_mb']:,.0f} MB ({figures['bytes_per_actor']:,.0f} B/actor), "
        f"stopped in {figures['stop_s']:.1f} s"
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
