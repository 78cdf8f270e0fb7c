"""pykka's figures: `ThreadingActor`, `ActorRef.tell` / `ask`, `start()` and `stop()`.

Run by `benchmarks.peers` with the python of a venv that has pykka; prints one JSON line.
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


def _counter_class(pykka: Any) -> Any:
    class Counter(pykka.ThreadingActor):  # type: ignore[misc]
        """Counts `Ping`; answers `Echo` with its number and ``"count"`` with the count."""

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            if type(message) is Ping:
                self.count += 1
                return None
            if type(message) is Echo:
                return message.n
            if message == "count":
                return self.count
            return None

    return Counter


def tell_burst(counter: Any, n: int) -> float:
    ref = counter.start()
    started = time.perf_counter()
    for i in range(n):
        ref.tell(Ping(i))
    count = ref.ask("count")  # FIFO: the answer comes after every ping is handled
    elapsed = time.perf_counter() - started
    assert count == n, count
    ref.stop()
    return n / elapsed


def ask_sequential(counter: Any, n: int) -> float:
    ref = counter.start()
    started = time.perf_counter()
    for i in range(n):
        ref.ask(Echo(i))
    elapsed = time.perf_counter() - started
    ref.stop()
    return elapsed / n * 1e6


def spawn_stop(counter: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        counter.start().stop()  # stop() blocks until the actor's thread has stopped
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    scale = parser.parse_args().scale
    pykka = importlib.import_module("pykka")
    counter = _counter_class(pykka)
    result: dict[str, Any] = {
        "peer": f"pykka {importlib.metadata.version('pykka')}",
        "note": "ThreadingActor: one OS thread per actor; tell/ask block the calling thread",
    }
    runs: list[tuple[str, str, int, Callable[[Any, int], float]]] = [
        ("tell_burst_msg_per_s", "tell", TELL, tell_burst),
        ("ask_us", "ask", ASK, ask_sequential),
        ("spawn_stop_us", "spawn_stop", SPAWN, spawn_stop),
    ]
    sizes: dict[str, int] = {}
    result["n"] = sizes
    failures = []
    for key, label, size, run in runs:
        n = sizes[label] = max(10, int(size * scale))
        print(f"{label} (n={n:,})", file=sys.stderr, flush=True)
        try:
            result[key] = run(counter, n)
        except Exception as error:
            result[key] = None
            failures.append(f"{label} failed: {type(error).__name__}: {error}")
    pykka.ActorRegistry.stop_all()
    if failures:
        result["note"] += "; " + "; ".join(failures)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
