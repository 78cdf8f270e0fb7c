"""Entities on NATS beside a plain published actor, on the same local nats-server (JetStream on),
in the same run. Two nodes in this one process: one hosts (or publishes), one sends.

- entity activation: the first ask to a new key (a placement read, a claim in the bucket, the
  actor started, the reply), in microseconds; beside an ask to an actor already published.
- entity tell: messages told to one active entity, handled (an ask at the end is the barrier),
  per second; beside the same to a published actor.
- entity ask: the round trip of an ask to an active entity; beside one to a published actor.
- durable entity tell and ask: the same to an entity of a durable type (each tell stored in the
  type's stream, then handled and acknowledged); beside a durably published actor.
"""

from __future__ import annotations

import time

from actorio import Actor, Message, handles
from actorio.nats import Durable, LocalServer, Node

from .__main__ import Row


class Count(Message):
    n: int


class Total(Message[int]):
    pass


class Counter(Actor[Count | Total]):
    def __init__(self, key: str = "") -> None:
        super().__init__()
        self.count = 0

    @handles(Count)
    async def counted(self, msg: Count) -> None:
        self.count += 1

    @handles(Total)
    async def total(self, msg: Total) -> int:
        return self.count


async def entity_tells(url: str, n: int) -> None:
    """``n`` tells to one active entity, from another node of this process, handled: the case
    ``entity_tell`` of `benchmarks.instructions`. An ask after every 50 tells is the barrier (a
    core NATS tell is at most once: under valgrind, a burst outran the host's subscription)."""
    async with await Node.connect(url) as host, await Node.connect(url) as client:
        await host.host(Counter, name="bench-entity", lease=10.0)
        entity = client.entity("bench-entity", "warm", Counter)
        before = await entity.ask(Total())
        for i in range(n):
            await entity.tell(Count(n=i))
            if i % 50 == 49:
                await entity.ask(Total(), timeout=60)
        assert await entity.ask(Total(), timeout=60) == before + n


async def _figures(url: str, tells: int, asks: int, activations: int) -> dict[str, tuple[float, float]]:
    async with await Node.connect(url) as host, await Node.connect(url) as client:
        await host.host(Counter, name="bench-entity", lease=10.0)
        await host.publish("bench-plain", Counter)
        await host.host(Counter, name="bench-durable-entity", lease=10.0, durable=True)
        await host.publish("bench-durable", Counter, durable=Durable(ordered=True))
        plain = client.ref("bench-plain", Counter)
        entity = client.entity("bench-entity", "warm", Counter)
        await plain.ask(Total())
        await entity.ask(Total())
        figures: dict[str, tuple[float, float]] = {}

        started = time.perf_counter()
        for i in range(activations):
            await client.entity("bench-entity", f"new{i}", Counter).ask(Total())
        activation = (time.perf_counter() - started) / activations * 1e6
        started = time.perf_counter()
        for _ in range(activations):
            await plain.ask(Total())
        figures["entity activation"] = (activation, (time.perf_counter() - started) / activations * 1e6)

        rates = []
        for ref in (entity, plain):
            before = await ref.ask(Total())
            started = time.perf_counter()
            for i in range(tells):
                ref.tell_nowait(Count(n=i))
            assert await ref.ask(Total(), timeout=60) == before + tells
            rates.append(tells / (time.perf_counter() - started))
        figures["entity tell"] = (rates[0], rates[1])

        times = []
        for ref in (entity, plain):
            started = time.perf_counter()
            for _ in range(asks):
                await ref.ask(Total())
            times.append((time.perf_counter() - started) / asks * 1e6)
        figures["entity ask"] = (times[0], times[1])

        # Durable: one message at a time per key (an entity's consumer) beside an ordered durable
        # publication (one at a time across its pool): the same delivery discipline.
        durable = client.entity("bench-durable-entity", "warm", Counter)
        stored = client.ref("bench-durable", Counter, durable=True)
        rates, times = [], []
        for ref in (durable, stored):
            before = await ref.ask(Total(), timeout=60)
            started = time.perf_counter()
            for i in range(max(10, tells // 20)):
                await ref.tell(Count(n=i))
            assert await ref.ask(Total(), timeout=60) == before + max(10, tells // 20)
            rates.append(max(10, tells // 20) / (time.perf_counter() - started))
            started = time.perf_counter()
            for _ in range(max(5, asks // 10)):
                await ref.ask(Total(), timeout=60)
            times.append((time.perf_counter() - started) / max(5, asks // 10) * 1e6)
        figures["durable entity tell"] = (rates[0], rates[1])
        figures["durable entity ask"] = (times[0], times[1])
        return figures


async def run_entities(scale: float, repeat: int, url: str | None = None) -> list[Row]:
    """The entity rows; on a local nats-server started for the run when ``url`` is None."""
    if url is None:
        with LocalServer() as server:
            return await run_entities(scale, repeat, server.url)
    tells, asks, activations = (
        max(20, int(20_000 * scale)),
        max(10, int(2_000 * scale)),
        max(5, int(500 * scale)),
    )
    runs = [await _figures(url, tells, asks, activations) for _ in range(repeat)]
    rows = []
    for name, unit, n, higher, label in (
        ("entity activation", "us", activations, False, "ask to a published actor"),
        ("entity tell", "msg/s", tells, True, "tell to a published actor"),
        ("entity ask", "us", asks, False, "ask to a published actor"),
        ("durable entity tell", "msg/s", max(10, tells // 20), True, "tell to a durable actor (ordered)"),
        ("durable entity ask", "us", max(5, asks // 10), False, "ask to a durable actor (ordered)"),
    ):
        pick = max if higher else min
        mine = pick(run[name][0] for run in runs)
        plain = pick(run[name][1] for run in runs)
        rows.append(
            Row(
                loop="asyncio",
                scenario=name,
                unit=unit,
                n=n,
                actorio=mine,
                baseline=plain,
                baseline_label=label,
                ratio=mine / plain,
                target="",
                met=None,
            )
        )
    return rows
