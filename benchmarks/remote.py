"""Actors on NATS beside bare nats-py, on the same local nats-server, in the same run.

- remote tell: messages told to an actor published on NATS, handled (an ask at the end is the
  barrier), per second; beside nats-py publishing the same JSON bytes to a subscriber that counts
  them (a future set at the last one is the barrier). Twice: through a plain reference (one NATS
  message a tell) and through ``ref.batched()`` (tells queued together leave as one message).
- remote ask: the round trip of one ask (validated request, typed reply); beside ``nc.request`` to
  a subscriber that responds with the payload it got.

- pool scale-out: asks with 1 ms of CPU work each, 16 in flight, to a pool of one worker
  process, then of two (`benchmarks.nats_worker`): what the second process adds.

Sender and receiver are two connections in this one process (so both sides share one core).
Every connection, server and process is closed on every path, failures included.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from actorio import Actor, Message, handles
from actorio.nats import LocalServer, Node

from .__main__ import Row
from .nats_worker import WORK, Burn, Burner

ROOT = Path(__file__).resolve().parent.parent


BARE_COUNT = b'{"type":"Count","data":{"n":1,"creation_date":"2026-01-01T00:00:00Z"}}'
"""What bare nats-py publishes beside a remote tell: a `Count` in its wire form, prebuilt."""


class Count(Message):
    n: int


class Total(Message[int]):
    pass


class Echo(Message[int]):
    n: int


class Counter(Actor[Count | Total | Echo]):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(Count)
    async def counted(self, msg: Count) -> None:
        self.count += 1

    @handles(Total)
    async def total(self, msg: Total) -> int:
        return self.count

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        return msg.n


async def _actorio_tell(url: str, n: int, batched: bool = False) -> float:
    async with await Node.connect(url) as server_side, await Node.connect(url) as client:
        counter = Counter()
        try:
            await server_side.publish("bench-counter", counter)
            ref = client.ref("bench-counter", Counter)
            if batched:
                ref = ref.batched()
            started = time.perf_counter()
            for i in range(n):
                ref.tell_nowait(Count(n=i))
            assert await ref.ask(Total(), timeout=60) == n
            elapsed = time.perf_counter() - started
        finally:
            await counter.stop()
        return n / elapsed


async def _actorio_send(url: str, n: int) -> float:
    """The sending side of `_actorio_tell` alone: tells to a name nobody publishes (the server
    drops them), until the node has sent them and closed."""
    async with await Node.connect(url) as client:
        ref = client.ref("bench-nobody", Counter)
        started = time.perf_counter()
        for i in range(n):
            ref.tell_nowait(Count(n=i))
    # Closing the node sent what was queued, then drained the connection.
    return n / (time.perf_counter() - started)


async def _bare_send(url: str, n: int) -> float:
    """The sending side of `_bare_tell` alone: prebuilt bytes to a subject nobody subscribes to."""
    sender = await nats.connect(url)
    try:
        started = time.perf_counter()
        for _ in range(n):
            await sender.publish("bench.nobody", BARE_COUNT)
        await sender.flush()
        return n / (time.perf_counter() - started)
    finally:
        await sender.close()


async def _actorio_ask(url: str, n: int) -> float:
    async with await Node.connect(url) as server_side, await Node.connect(url) as client:
        counter = Counter()
        try:
            await server_side.publish("bench-echo", counter)
            ref = client.ref("bench-echo", Counter)
            await ref.ask(Echo(n=0))
            started = time.perf_counter()
            for i in range(n):
                await ref.ask(Echo(n=i))
            elapsed = time.perf_counter() - started
        finally:
            await counter.stop()
        return elapsed / n * 1e6


@contextlib.asynccontextmanager
async def _two_connections(url: str) -> AsyncIterator[tuple[Client, Client]]:
    """A receiving and a sending connection, both closed on the way out, whatever happened."""
    receiver = await nats.connect(url)
    try:
        sender = await nats.connect(url)
        try:
            yield receiver, sender
        finally:
            await sender.close()
    finally:
        await receiver.close()


async def _subscribed(nc: Client) -> None:
    """Return once the server has the subscriptions just made. One flush is not enough: nats-py
    writes its PING straight to the socket, ahead of a SUB still waiting in its write buffer;
    the second flush's PING follows the SUB."""
    await nc.flush()
    await nc.flush()


async def _bare_tell(url: str, n: int) -> float:
    async with _two_connections(url) as (receiver, sender):
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen = 0

        async def on_message(msg: Msg) -> None:
            nonlocal seen
            seen += 1
            if seen == n:
                done.set_result(None)

        await receiver.subscribe("bench.bare", cb=on_message)
        await _subscribed(receiver)
        started = time.perf_counter()
        for _ in range(n):
            await sender.publish("bench.bare", BARE_COUNT)
        await asyncio.wait_for(done, 60)
        return n / (time.perf_counter() - started)


async def _bare_ask(url: str, n: int) -> float:
    async with _two_connections(url) as (receiver, sender):

        async def on_request(msg: Msg) -> None:
            await msg.respond(msg.data)

        await receiver.subscribe("bench.echo", cb=on_request)
        await _subscribed(receiver)
        payload = b'{"type":"Echo","data":{"n":1}}'
        await sender.request("bench.echo", payload, timeout=5)
        started = time.perf_counter()
        for _ in range(n):
            await sender.request("bench.echo", payload, timeout=5)
        return (time.perf_counter() - started) / n * 1e6


@contextlib.asynccontextmanager
async def _workers(url: str, name: str, count: int) -> AsyncIterator[None]:
    """``count`` worker processes serving ``name``; each is stopped (its stdin closed, killed
    after 10 s) on the way out, whatever happened, the ones that failed to start included."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.nats_worker",
                url,
                name,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if line != b"ready\n":
                raise RuntimeError(f"a NATS benchmark worker did not start: {line!r}")
        yield
    finally:
        for process in processes:
            if process.returncode is None and process.stdin is not None:
                process.stdin.close()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


IN_FLIGHT = 16


async def _pool_rate(url: str, workers: int, n: int) -> float:
    """Asks per second handled by a pool of ``workers`` processes, ``IN_FLIGHT`` asks at once."""
    name = f"bench-pool-{workers}"
    async with _workers(url, name, workers), await Node.connect(url) as client:
        ref = client.ref(name, Burner)
        for _ in range(4 * workers):  # every worker has served one before the clock starts
            assert await ref.ask(Burn(n=0), timeout=60) == WORK
        per_asker = max(1, n // IN_FLIGHT)

        async def asker() -> None:
            for i in range(per_asker):
                assert await ref.ask(Burn(n=i), timeout=60) == WORK

        started = time.perf_counter()
        await asyncio.gather(*(asker() for _ in range(IN_FLIGHT)))
        return per_asker * IN_FLIGHT / (time.perf_counter() - started)


async def _best_of_both(
    mine: Callable[[str, int], Awaitable[float]],
    bare: Callable[[str, int], Awaitable[float]],
    url: str,
    n: int,
    repeat: int,
    higher: bool,
) -> tuple[float, float]:
    """The best of ``repeat`` runs of each side, the two sides taking turns: on a shared machine,
    a burst of load elsewhere then falls on both rather than on one side's runs."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        ours.append(await mine(url, n))
        theirs.append(await bare(url, n))
    best = max if higher else min
    return best(ours), best(theirs)


async def run_nats(scale: float, repeat: int, url: str | None = None) -> list[Row]:
    """The NATS rows; on a local nats-server started for the run when ``url`` is None."""
    if url is None:
        with LocalServer(jetstream=False) as server:
            return await run_nats(scale, repeat, server.url)
    tells, asks = max(20, int(20_000 * scale)), max(10, int(2_000 * scale))
    pooled = max(20, int(2_000 * scale))
    rows = []
    for name, unit, n, mine, bare, label, higher, target in (
        ("nats remote tell", "msg/s", tells, _actorio_tell, _bare_tell, "nats-py publish", True, 0.8),
        (
            "nats remote tell, batched",
            "msg/s",
            tells,
            lambda url, n: _actorio_tell(url, n, batched=True),
            _bare_tell,
            "nats-py publish",
            True,
            0.8,
        ),
        ("nats remote ask", "us", asks, _actorio_ask, _bare_ask, "nats-py request", False, 1.1),
        (
            "nats pool of 2 workers",
            "asks/s",
            pooled,
            lambda url, n: _pool_rate(url, 2, n),
            lambda url, n: _pool_rate(url, 1, n),
            "1 worker",
            True,
            1.7,
        ),
    ):
        actorio_figure, bare_figure = await _best_of_both(mine, bare, url, n, repeat, higher)
        ratio = actorio_figure / bare_figure
        rows.append(
            Row(
                loop="asyncio",
                scenario=name,
                unit=unit,
                n=n,
                actorio=actorio_figure,
                baseline=bare_figure,
                baseline_label=label,
                ratio=ratio,
                target=f"{'>=' if higher else '<='} {target:g}x",
                met=ratio >= target if higher else ratio <= target,
            )
        )
    return rows
