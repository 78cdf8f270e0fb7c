"""thespian's figures: an `ActorSystem` on ``simpleSystemBase``, `createActor`, `tell`, `ask` and
`ActorExitRequest`.

Run by `benchmarks.peers` with the python of a venv that has thespian; prints one JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from typing import Any

TELL, ASK, SPAWN = 200_000, 20_000, 5_000
BASE = "simpleSystemBase"


class Ping:
    """A told message, built for each send (as actorio's benchmark does): a slotted class."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class Echo:
    """An asked message, built for each ask, answered with its number."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def _counter_class(actors: Any) -> Any:
    class Counter(actors.Actor):  # type: ignore[misc]
        """Counts `Ping`; answers `Echo` with its number and ``"count"`` with its count."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.count = 0

        def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802 - thespian's name
            if type(message) is Ping:
                self.count += 1
            elif type(message) is Echo:
                self.send(sender, message.n)
            elif message == "count":
                self.send(sender, self.count)

    return Counter


def tell_burst(system: Any, counter: Any, exit_request: Any, n: int) -> float:
    address = system.createActor(counter)
    started = time.perf_counter()
    for i in range(n):
        system.tell(address, Ping(i))
    count = system.ask(address, "count", 600)  # FIFO: answered after every ping is handled
    elapsed = time.perf_counter() - started
    assert count == n, count
    system.tell(address, exit_request())
    return n / elapsed


def ask_sequential(system: Any, counter: Any, exit_request: Any, n: int) -> float:
    address = system.createActor(counter)
    started = time.perf_counter()
    for i in range(n):
        system.ask(address, Echo(i), 60)
    elapsed = time.perf_counter() - started
    system.tell(address, exit_request())
    return elapsed / n * 1e6


def spawn_stop(system: Any, counter: Any, exit_request: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        address = system.createActor(counter)
        system.tell(address, exit_request())  # simpleSystemBase delivers it before tell returns
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    scale = parser.parse_args().scale
    actors = importlib.import_module("thespian.actors")
    counter = _counter_class(actors)
    result: dict[str, Any] = {
        "peer": f"thespian {importlib.metadata.version('thespian')}",
        "note": f"{BASE}: in-process, single-threaded, each tell/ask runs the deliveries it causes",
    }
    runs: list[tuple[str, str, int, Callable[[Any, Any, Any, int], float]]] = [
        ("tell_burst_msg_per_s", "tell", TELL, tell_burst),
        ("ask_us", "ask", ASK, ask_sequential),
        ("spawn_stop_us", "spawn_stop", SPAWN, spawn_stop),
    ]
    sizes: dict[str, int] = {}
    result["n"] = sizes
    failures = []
    system = actors.ActorSystem(BASE)
    try:
        for key, label, size, run in runs:
            n = sizes[label] = max(10, int(size * scale))
            print(f"{label} (n={n:,})", file=sys.stderr, flush=True)
            try:
                result[key] = run(system, counter, actors.ActorExitRequest, n)
            except Exception as error:
                result[key] = None
                failures.append(f"{label} failed: {type(error).__name__}: {error}")
    finally:
        system.shutdown()
    if failures:
        result["note"] += "; " + "; ".join(failures)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
