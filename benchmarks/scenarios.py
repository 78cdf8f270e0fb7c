"""The scenarios: each measures actorio and the hand-written baseline in the same process.

Every scenario takes a size ``n`` and returns the figure of each side; `measure` runs each side
``repeat`` times, alternately, and keeps the best figure, so that a noisy machine distorts the
ratio as little as it can.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from actorio import Actor, GcPolicy, Message, handles

from .baseline import MESSAGES, SIDES, Echo, Ping, YieldingBaselineActor


@dataclass(frozen=True)
class Scenario:
    """One row of the table: what is measured, its unit, the size of a full run, and its target."""

    name: str
    unit: str
    size: int
    run: Callable[[str, int], Awaitable[float]]
    higher_is_better: bool
    target: float | None = None
    """The ratio actorio / baseline to reach (at least, if higher is better; at most otherwise)."""
    baseline_label: str = "baseline"


# -- messaging --------------------------------------------------------------------------------


async def tell_burst(side: str, n: int) -> float:
    """Messages per second when the sender never yields; an ask at the end is the FIFO barrier."""
    actor = SIDES[side]()
    ref = await actor.start()
    message = Ping(n=0)
    started = time.perf_counter()
    for _ in range(n):
        await ref.tell(message)
    await ref.ask(Echo(n=0))
    elapsed = time.perf_counter() - started
    assert actor.count == n
    await actor.stop()
    return n / elapsed


async def tell_built(side: str, n: int, make_actor: Callable[[], Any] | None = None) -> float:
    """Messages per second when the sender builds each message as it tells it, in a loop that
    awaits nothing else: actorio's validated messages (its ``tell`` lets the actor catch up every
    256 queued), the hand-written side's slotted ones (its queue holds the whole burst).
    ``make_actor``, if given, makes the actor instead of the side's own class."""
    actor = (make_actor or SIDES[side])()
    ref = await actor.start()
    make = MESSAGES[side][0]
    started = time.perf_counter()
    for i in range(n):
        await ref.tell(make(i))
    await ref.ask(Echo(n=0))
    elapsed = time.perf_counter() - started
    assert actor.count == n
    await actor.stop()
    return n / elapsed


async def tell_built_vs_yielding(side: str, n: int) -> float:
    """`tell_built` for actorio, or for the hand-written actor that also lets its actor catch up
    every 256 queued messages (`YieldingBaselineActor`) ("baseline" column)."""
    return await tell_built(side, n, YieldingBaselineActor if side == "baseline" else None)


async def tell_built_gc_policy(side: str, n: int) -> float:
    """`tell_built` for actorio, under `actorio.run`'s GC policy ("actorio") or CPython's default
    collector ("baseline" column): what the policy buys a program that queues many messages."""
    if side == "baseline":
        return await tell_built("actorio", n)
    applied = GcPolicy().apply()
    try:
        applied.started()
        return await tell_built("actorio", n)
    finally:
        applied.restore()


async def tell_interleaved(side: str, n: int) -> float:
    """Messages per second when the sender yields to the loop after each send."""
    actor = SIDES[side]()
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
    return n / elapsed


async def ask_sequential(side: str, n: int) -> float:
    """Microseconds per ask round trip, one asker."""
    actor = SIDES[side]()
    ref = await actor.start()
    message = Echo(n=7)
    started = time.perf_counter()
    for _ in range(n):
        await ref.ask(message)
    elapsed = time.perf_counter() - started
    await actor.stop()
    return elapsed / n * 1e6


async def ask_built(side: str, n: int) -> float:
    """Microseconds per ask round trip, one asker building each message as it asks it."""
    actor = SIDES[side]()
    ref = await actor.start()
    make = MESSAGES[side][1]
    started = time.perf_counter()
    for i in range(n):
        await ref.ask(make(i))
    elapsed = time.perf_counter() - started
    await actor.stop()
    return elapsed / n * 1e6


class PlainPing(BaseModel):
    """A plain frozen pydantic model with the user's fields only: what a message costs at least."""

    model_config = ConfigDict(frozen=True)

    n: int


async def construct(side: str, n: int) -> float:
    """Microseconds to build one message: actorio's `Ping` (validated, with ``sender`` and
    ``creation_date``), or a plain frozen pydantic model with the same field ("baseline")."""
    make: Callable[..., object] = Ping if side == "actorio" else PlainPing
    gc.collect()
    started = time.perf_counter()
    for i in range(n):
        make(n=i)
    return (time.perf_counter() - started) / n * 1e6


ASKERS = 100


async def ask_concurrent(side: str, n: int) -> float:
    """Microseconds per ask, amortized, with 100 askers asking one actor at once."""
    actor = SIDES[side]()
    ref = await actor.start()
    per_asker = max(1, n // ASKERS)

    async def asker(k: int) -> None:
        message = Echo(n=k)
        for _ in range(per_asker):
            assert await ref.ask(message) == k

    started = time.perf_counter()
    await asyncio.gather(*(asker(k) for k in range(ASKERS)))
    elapsed = time.perf_counter() - started
    await actor.stop()
    return elapsed / (per_asker * ASKERS) * 1e6


# -- lifecycle and memory ---------------------------------------------------------------------


async def spawn_stop(side: str, n: int) -> float:
    """Microseconds to create, start and stop one actor."""
    make = SIDES[side]
    started = time.perf_counter()
    for _ in range(n):
        actor = make()
        await actor.start()
        await actor.stop()
    return (time.perf_counter() - started) / n * 1e6


async def idle_memory(side: str, n: int) -> float:
    """Bytes per started, idle actor (tracemalloc), its reference included."""
    make = SIDES[side]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        actors = [make() for _ in range(n)]
        refs = [await actor.start() for actor in actors]
        for _ in range(3):  # let every task reach its first wait
            await asyncio.sleep(0)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for actor in actors:
        await actor.stop()
    del refs
    return (after - before) / n


async def _many(side: str, n: int) -> None:
    make = SIDES[side]
    actors = [make() for _ in range(n)]
    refs = [await actor.start() for actor in actors]
    message = Ping(n=0)
    for ref in refs:
        await ref.tell(message)
    # The actors were woken in the order they were told, and the loop runs them in that order:
    # once the last one answers an ask, every one has handled its message (checked below).
    await refs[-1].ask(Echo(n=0))
    assert sum(actor.count for actor in actors) == n
    for actor in actors:
        await actor.stop()


async def many_actors_time(side: str, n: int) -> float:
    """Seconds to start ``n`` actors, give each one message, and stop them."""
    gc.collect()
    started = time.perf_counter()
    await _many(side, n)
    return time.perf_counter() - started


async def many_actors_peak(side: str, n: int) -> float:
    """Peak traced memory, in MB, while doing the same as `many_actors_time`."""
    gc.collect()
    tracemalloc.start()
    try:
        await _many(side, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6


# -- dispatch ---------------------------------------------------------------------------------

_FLAT: list[type[Message[Any]]] = [type(f"Flat{i}", (Message,), {"__module__": __name__}) for i in range(50)]
_DEEP: list[type[Message[Any]]] = [_FLAT[0]]
for _level in range(1, 6):
    _DEEP.append(type(f"Deep{_level}", (_DEEP[-1],), {"__module__": __name__}))


def _counting_handler(message_type: type[Message[Any]]) -> Callable[[Any, Message[Any]], Awaitable[None]]:
    async def on_message(self: Any, message: Message[Any]) -> None:
        self.count += 1

    return handles(message_type)(on_message)


class _Wide(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(Echo)
    async def barrier(self, message: Echo) -> int:
        return message.n


Wide: type[_Wide] = type("Wide", (_Wide,), {f"on_flat{i}": _counting_handler(t) for i, t in enumerate(_FLAT)})
"""An actor with 50 handled message types (plus the barrier); ``Deep5`` is five levels below the
handled ``Flat0``."""


async def _dispatch(message_type: type[Message[Any]], n: int) -> float:
    actor = Wide()
    ref = await actor.start()
    message = message_type()
    await ref.tell(message)  # the first message of the class resolves and caches its handler
    await ref.ask(Echo(n=0))
    started = time.perf_counter()
    for _ in range(n):
        await ref.tell(message)
    await ref.ask(Echo(n=0))
    elapsed = time.perf_counter() - started
    assert actor.count == n + 1
    await actor.stop()
    return elapsed / n * 1e6


async def dispatch_depth(side: str, n: int) -> float:
    """Microseconds per message: 5 levels below a handled type ("actorio"), or of a handled type
    itself ("baseline" column: the exact-type hit), in an actor with 50 handled types."""
    return await _dispatch(_DEEP[-1] if side == "actorio" else _FLAT[25], n)


# -- telemetry ----------------------------------------------------------------------------------


async def _with_telemetry(run: Callable[[str, int], Awaitable[float]], side: str, n: int) -> float:
    """``run``'s actorio side with OpenTelemetry traces and metrics on ("actorio": the SDK's
    tracer and meter, no exporter), or off ("baseline" column)."""
    if side == "baseline":
        return await run("actorio", n)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from actorio.telemetry import instrument, uninstrument

    instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    try:
        return await run("actorio", n)
    finally:
        uninstrument()


async def tell_burst_traced(side: str, n: int) -> float:
    """`tell_burst` with telemetry on ("actorio") and off ("baseline" column)."""
    return await _with_telemetry(tell_burst, side, n)


async def ask_sequential_traced(side: str, n: int) -> float:
    """`ask_sequential` with telemetry on ("actorio") and off ("baseline" column)."""
    return await _with_telemetry(ask_sequential, side, n)


SCENARIOS: list[Scenario] = [
    Scenario("tell, burst", "msg/s", 200_000, tell_burst, True, 1.5),
    Scenario("tell, interleaved", "msg/s", 100_000, tell_interleaved, True, 1.0),
    Scenario("message construction", "us/msg", 200_000, construct, False, 1.2, "plain pydantic"),
    Scenario("tell, built in the loop", "msg/s", 200_000, tell_built, True, 0.5, "hand-written, slotted"),
    Scenario("tell, built, vs catch-up", "msg/s", 200_000, tell_built_vs_yielding, True, None, "yielding"),
    Scenario("tell, built, GC policy", "msg/s", 200_000, tell_built_gc_policy, True, None, "default GC"),
    Scenario("ask, sequential", "us/ask", 50_000, ask_sequential, False, 1.0),
    Scenario("ask, built in the loop", "us/ask", 50_000, ask_built, False, 1.3, "hand-written, slotted"),
    Scenario(f"ask, {ASKERS} askers", "us/ask", 100_000, ask_concurrent, False, 1.0),
    Scenario("spawn + stop", "us/actor", 20_000, spawn_stop, False, 1.0),
    Scenario("idle actor memory", "B/actor", 5_000, idle_memory, False, 0.5),
    Scenario("dispatch, 5 levels deep", "us/msg", 200_000, dispatch_depth, False, 1.05, "exact hit"),
    Scenario("100k actors, time", "s", 100_000, many_actors_time, False),
    Scenario("100k actors, peak memory", "MB", 100_000, many_actors_peak, False),
    Scenario("tell, burst, traced", "msg/s", 50_000, tell_burst_traced, True, None, "telemetry off"),
    Scenario(
        "ask, sequential, traced", "us/ask", 20_000, ask_sequential_traced, False, None, "telemetry off"
    ),
]
