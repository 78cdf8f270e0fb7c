"""tapio's figures (PyPI ``tapio-py``): an `ActorSystem`, behaviors from ``Behaviors.receive``,
pydantic `Message`s, `ActorRef.tell` and ``ref.ask(make, expect=...)``.

Run by `benchmarks.peers` with the python of a venv that has tapio-py; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

TELL, ASK, SPAWN = 200_000, 20_000, 5_000
TIMEOUT = timedelta(seconds=600)


class Kit:
    """The library and the message types and behaviors every scenario uses."""

    def __init__(self) -> None:
        tapio = self.tapio = importlib.import_module("tapio")
        behaviors = tapio.Behaviors

        def message(name: str, **fields: Any) -> Any:
            # type() with annotations: pydantic sees real types, mypy sees Any.
            return type(name, (tapio.Message,), {"__annotations__": fields, "__module__": __name__})

        reply = self.Reply = message("Reply", n=int)
        ping = self.Ping = message("Ping", n=int)
        echo = self.Echo = message("Echo", n=int, reply_to=tapio.ActorRef[reply])
        stop = self.Stop = message("Stop")
        self.Run = message("Run", n=int, reply_to=tapio.ActorRef[reply])

        def counter() -> Any:
            count = 0

            async def receive(received: Any) -> Any:
                nonlocal count
                if isinstance(received, ping):
                    count += 1
                elif isinstance(received, echo):
                    received.reply_to.tell(reply(n=count if received.n < 0 else received.n))
                else:
                    return behaviors.stopped()
                return behaviors.same()

            return behaviors.receive_message(receive, msg_type=ping | echo | stop)

        self.counter = counter

        def spawner() -> Any:
            """Spawns a child, watches it, tells it to stop; on its `Terminated`, the next one."""
            state: dict[str, Any] = {}

            def next_child(ctx: Any) -> None:
                child = ctx.spawn_anonymous(counter())
                ctx.watch(child)
                child.tell(stop())

            async def on_run(ctx: Any, run: Any) -> Any:
                state["left"], state["reply_to"] = run.n, run.reply_to
                next_child(ctx)
                return behaviors.same()

            async def on_signal(ctx: Any, signal: Any) -> Any:
                if not isinstance(signal, tapio.Terminated):
                    return behaviors.unhandled()
                state["left"] -= 1
                if state["left"]:
                    next_child(ctx)
                else:
                    state["reply_to"].tell(reply(n=0))
                return behaviors.same()

            return behaviors.receive(on_run, msg_type=self.Run, on_signal=on_signal)

        self.spawner = spawner


async def tell_burst(kit: Any, system: Any, n: int) -> float:
    ref = system.spawn_anonymous(kit.counter())
    started = time.perf_counter()
    for i in range(n):
        ref.tell(kit.Ping(n=i))  # built for each send, as actorio's benchmark does
    # FIFO: the answer (the count, for n=-1) comes after every ping is handled
    reply = await ref.ask(lambda to: kit.Echo(n=-1, reply_to=to), expect=kit.Reply, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    assert reply.n == n, reply.n
    ref.tell(kit.Stop())
    return n / elapsed


async def ask_sequential(kit: Any, system: Any, n: int) -> float:
    ref = system.spawn_anonymous(kit.counter())
    started = time.perf_counter()
    for i in range(n):
        await ref.ask(lambda to, i=i: kit.Echo(n=i, reply_to=to), expect=kit.Reply)
    elapsed = time.perf_counter() - started
    ref.tell(kit.Stop())
    return elapsed / n * 1e6


async def spawn_stop(kit: Any, system: Any, n: int) -> float:
    ref = system.spawn_anonymous(kit.spawner())
    started = time.perf_counter()
    await ref.ask(lambda to: kit.Run(n=n, reply_to=to), expect=kit.Reply, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    return elapsed / n * 1e6


async def measure(scale: float) -> dict[str, Any]:
    kit = Kit()
    result: dict[str, Any] = {
        "peer": f"tapio-py {importlib.metadata.version('tapio-py')}",
        "note": "asyncio; pydantic messages re-validated on delivery (default settings); "
        "spawn + stop: a parent spawns, watches and stops each child, the next on its Terminated",
    }
    runs: list[tuple[str, str, int, Callable[[Any, Any, int], Awaitable[float]]]] = [
        ("tell_burst_msg_per_s", "tell", TELL, tell_burst),
        ("ask_us", "ask", ASK, ask_sequential),
        ("spawn_stop_us", "spawn_stop", SPAWN, spawn_stop),
    ]
    sizes: dict[str, int] = {}
    result["n"] = sizes
    failures = []
    async with kit.tapio.ActorSystem("bench") as system:
        for key, label, size, run in runs:
            n = sizes[label] = max(10, int(size * scale))
            print(f"{label} (n={n:,})", file=sys.stderr, flush=True)
            try:
                result[key] = await run(kit, system, n)
            except Exception as error:
                result[key] = None
                failures.append(f"{label} failed: {type(error).__name__}: {error}")
    if failures:
        result["note"] += "; " + "; ".join(failures)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    result = asyncio.run(measure(parser.parse_args().scale))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
