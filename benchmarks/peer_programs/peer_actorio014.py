"""actorio 0.1.4's figures: the original untyped API, an `Actor` overriding ``handle_message``,
`Message` / `DataMessage`, `ask(ref, message)`, ``async with actor as ref``.

Run by `benchmarks.peers` with the python of a venv that has ``actorio==0.1.4`` (the same import
name as this project, hence the venv); prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

TELL, ASK, SPAWN = 200_000, 20_000, 5_000


def _classes(actorio: Any) -> tuple[Any, Any]:
    class Ping(actorio.Message):  # type: ignore[misc]
        """A told message."""

    class Counter(actorio.Actor):  # type: ignore[misc]
        """Counts `Ping`s; answers any other message with a `DataMessage` of its count."""

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        async def handle_message(self, message: Any) -> None:
            if isinstance(message, Ping):
                self.count += 1
            else:
                await message.sender.tell(actorio.DataMessage(data=self.count, sender=self))

    return Ping, Counter


async def tell_burst(actorio: Any, ping: Any, counter: Any, n: int) -> float:
    inbox = actorio.Reference()  # a message must have a sender
    async with counter() as ref:
        started = time.perf_counter()
        for _ in range(n):
            await ref.tell(ping(sender=inbox))  # built for each send, as actorio's benchmark does
        reply = await actorio.ask(ref, actorio.Message())  # FIFO: answered after every ping
        elapsed = time.perf_counter() - started
    assert reply.data == n, reply.data
    return n / elapsed


async def ask_sequential(actorio: Any, ping: Any, counter: Any, n: int) -> float:
    async with counter() as ref:
        started = time.perf_counter()
        for _ in range(n):
            await actorio.ask(ref, actorio.Message())  # ask sets the message's sender
        elapsed = time.perf_counter() - started
    return elapsed / n * 1e6


async def spawn_stop(actorio: Any, ping: Any, counter: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        actor = counter()
        await actor.start()
        await actor.stop()
    return (time.perf_counter() - started) / n * 1e6


async def stop_with_child(actorio: Any, ping: Any, counter: Any) -> str | None:
    """Whether stopping a parent that has a child works on this Python; a note if it does not."""
    # 0.1.4 hands coroutines to asyncio.wait, which 3.11 refuses, leaving them never awaited.
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    parent, child = counter(), counter()
    await parent.start()
    await parent.register_child(child)
    try:
        await asyncio.wait_for(parent.stop(), 5)
    except Exception as error:
        await child.stop()
        return f"stopping an actor with children fails here ({type(error).__name__}: {error})"
    return None


async def measure(scale: float) -> dict[str, Any]:
    actorio = importlib.import_module("actorio")
    ping, counter = _classes(actorio)
    result: dict[str, Any] = {
        "peer": f"actorio {importlib.metadata.version('actorio')}",
        "note": "untyped original; asyncio, a task per actor, per mailbox read and per handled message",
    }
    runs: list[tuple[str, str, int, Callable[[Any, Any, Any, int], Awaitable[float]]]] = [
        ("tell_burst_msg_per_s", "tell", TELL, tell_burst),
        ("ask_us", "ask", ASK, ask_sequential),
        ("spawn_stop_us", "spawn_stop", SPAWN, spawn_stop),
    ]
    sizes: dict[str, int] = {}
    result["n"] = sizes
    notes = []
    for key, label, size, run in runs:
        n = sizes[label] = max(10, int(size * scale))
        print(f"{label} (n={n:,})", file=sys.stderr, flush=True)
        try:
            result[key] = await run(actorio, ping, counter, n)
        except Exception as error:
            result[key] = None
            notes.append(f"{label} failed: {type(error).__name__}: {error}")
    child_note = await stop_with_child(actorio, ping, counter)
    if child_note:
        notes.append(child_note)
    if notes:
        result["note"] += "; " + "; ".join(notes)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    result = asyncio.run(measure(parser.parse_args().scale))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
