"""Core figures: actorio beside a hand-written one-task ``asyncio.Queue`` actor, same process.

    python -m benchmarks.core            # the full run (about half a minute)
    python -m benchmarks.core --quick    # tiny sizes: a smoke run, figures mean nothing

Each scenario runs actorio and the baseline alternately, ``--repeat`` times, and keeps the best
time of each, so that a noisy machine distorts the ratio as little as it can. Prints one table
and writes the figures as JSON (``--json PATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from actorio import Actor, Message, handles


class Ping(Message):
    """A told message."""

    n: int


class Echo(Message[int]):
    """An asked message, answered with its number."""

    n: int


class _BaselineStop:
    pass


class BaselineActor:
    """The hand-written actor: one task, an ``asyncio.Queue``, dict dispatch, a future per ask."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[Any] | None]] = asyncio.Queue()
        self.handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {Ping: self.on_ping, Echo: self.on_echo}
        self.count = 0
        self.task: asyncio.Task[None] | None = None

    async def on_ping(self, message: Ping) -> None:
        self.count += 1

    async def on_echo(self, message: Echo) -> int:
        return message.n

    async def run(self) -> None:
        while True:
            message, future = await self.queue.get()
            if type(message) is _BaselineStop:
                return
            try:
                result = await self.handlers[type(message)](message)
            except Exception as error:
                if future is None:
                    raise
                future.set_exception(error)
                continue
            if future is not None and not future.done():
                future.set_result(result)

    async def start(self) -> BaselineActor:
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def stop(self) -> None:
        self.queue.put_nowait((_BaselineStop(), None))
        assert self.task is not None
        await self.task

    async def tell(self, message: Any) -> None:
        self.queue.put_nowait((message, None))

    async def ask(self, message: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((message, future))
        return await future


class Counter(Actor[Ping | Echo]):
    """The same actor, written with actorio."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(Ping)
    async def on_ping(self, message: Ping) -> None:
        self.count += 1

    @handles(Echo)
    async def on_echo(self, message: Echo) -> int:
        return message.n


class _Subject:
    """One side of a comparison, behind the same small interface."""

    def __init__(self, name: str) -> None:
        self.name = name

    def make(self) -> Any:
        return BaselineActor() if self.name == "baseline" else Counter()


async def _tell_burst(subject: _Subject, n: int) -> float:
    actor = subject.make()
    ref = await actor.start()
    message = Ping(n=0)
    started = time.perf_counter()
    for _ in range(n):
        await ref.tell(message)
    await ref.ask(Echo(n=0))  # FIFO barrier: every tell before it was handled
    elapsed = time.perf_counter() - started
    assert actor.count == n
    await actor.stop()
    return elapsed


async def _tell_interleaved(subject: _Subject, n: int) -> float:
    actor = subject.make()
    ref = await actor.start()
    message = Ping(n=0)
    started = time.perf_counter()
    for _ in range(n):
        await ref.tell(message)
        await asyncio.sleep(0)
    await ref.ask(Echo(n=0))
    elapsed = time.perf_counter() - started
    assert actor.count == n
    await actor.stop()
    return elapsed


async def _ask_sequential(subject: _Subject, n: int) -> float:
    actor = subject.make()
    ref = await actor.start()
    message = Echo(n=7)
    started = time.perf_counter()
    for _ in range(n):
        await ref.ask(message)
    elapsed = time.perf_counter() - started
    await actor.stop()
    return elapsed


async def _spawn_stop(subject: _Subject, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        actor = subject.make()
        await actor.start()
        await actor.stop()
    return time.perf_counter() - started


@dataclass
class Row:
    scenario: str
    unit: str
    n: int
    actorio: float
    baseline: float
    ratio: float
    better: str


SCENARIOS: list[tuple[str, Callable[[_Subject, int], Awaitable[float]], str, int]] = [
    ("tell, burst", _tell_burst, "msg/s", 200_000),
    ("tell, interleaved", _tell_interleaved, "msg/s", 100_000),
    ("ask round trip", _ask_sequential, "us/ask", 50_000),
    ("spawn + stop", _spawn_stop, "us/actor", 20_000),
]


async def _measure(repeat: int, scale: float) -> list[Row]:
    rows = []
    for name, scenario, unit, size in SCENARIOS:
        n = max(10, int(size * scale))
        best: dict[str, float] = {}
        for _ in range(repeat):
            for side in ("actorio", "baseline"):
                gc.collect()
                elapsed = await scenario(_Subject(side), n)
                best[side] = min(best.get(side, float("inf")), elapsed)
        if unit == "msg/s":
            ours, theirs = n / best["actorio"], n / best["baseline"]
            ratio, better = ours / theirs, "higher"
        else:
            ours, theirs = best["actorio"] / n * 1e6, best["baseline"] / n * 1e6
            ratio, better = ours / theirs, "lower"
        rows.append(Row(name, unit, n, ours, theirs, ratio, better))
    return rows


def _table(rows: list[Row]) -> str:
    lines = [
        f"{'scenario':<20} {'unit':<9} {'actorio':>12} {'baseline':>12} {'ratio':>7}  (better)",
        "-" * 72,
    ]
    for row in rows:
        lines.append(
            f"{row.scenario:<20} {row.unit:<9} {row.actorio:>12,.1f} {row.baseline:>12,.1f} "
            f"{row.ratio:>6.2f}x  ({row.better})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the table, write JSON if asked."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best counts")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    scale, repeat = (0.001, 1) if args.quick else (1.0, args.repeat)
    rows = asyncio.run(_measure(repeat, scale))
    print(
        f"actorio core benchmark; Python {platform.python_version()} on {platform.machine()}, {sys.platform}"
    )
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": platform.python_version(), "rows": [asdict(r) for r in rows]}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
