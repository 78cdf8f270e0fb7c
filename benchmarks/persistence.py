"""Persistent actors beside the bare store, in the same run (``python -m benchmarks --persistence``).

- persisted events/s, one actor asked again and again (each ask one event, one commit): on SQLite
  beside bare ``sqlite3`` inserts with the same durability (WAL, ``synchronous=FULL``, one
  transaction per insert), on JetStream beside bare ``js.publish`` awaiting each acknowledgement;
- persisted events/s, 1,000 actors asked at once (group commit on SQLite; concurrent publishes on
  JetStream): beside bare ``sqlite3`` inserting the same rows 1,000 to a transaction, and bare
  JetStream publishes of 1,000 at once, each acknowledged;
- recovery of an actor with 100,000 events (written 1,000 to an append): the time from its start
  to its first reply, without a snapshot, beside with a snapshot at the last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from pydantic import BaseModel

from actorio import ActorRef, Message, handles
from actorio.nats import LocalServer
from actorio.persistence import (
    Event,
    EventSourcedActor,
    JetStreamJournal,
    Journal,
    PersistenceId,
    SnapshotRecord,
    SqliteJournal,
)

from .__main__ import Row

PAYLOAD = b'{"amount":1}'


class Add(Message[int]):
    amount: int


class Added(Event):
    amount: int


class Total(BaseModel):
    amount: int = 0


class Ledger(EventSourcedActor[Add, Total, Added]):
    entity_type = "bench"

    def apply(self, state: Total, event: Added) -> Total:
        return Total(amount=state.amount + event.amount)

    @handles(Add)
    async def add(self, msg: Add) -> int:
        await self.persist(Added(amount=msg.amount))
        return self.state.amount


# -- one actor, one event per ask -----------------------------------------------------------------


async def _actors(journal: Journal, actors: int, events: int) -> float:
    """Events/s of ``actors`` actors each asked ``events`` times, all actors at once."""
    started_actors = [Ledger(f"a{i}", journal) for i in range(actors)]
    refs = [await actor.start() for actor in started_actors]
    for actor in started_actors:
        await actor.wait_recovered()

    async def drive(ref: ActorRef[Add]) -> None:
        for _ in range(events):
            await ref.ask(Add(amount=1))

    started = time.perf_counter()
    await asyncio.gather(*(drive(ref) for ref in refs))
    elapsed = time.perf_counter() - started
    for actor in started_actors:
        await actor.stop()
    return actors * events / elapsed


def _bare_sqlite(path: str, rows: int, per_transaction: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE e (t TEXT, i TEXT, s INTEGER, p BLOB, PRIMARY KEY (t, i, s)) WITHOUT ROWID"
    )
    started = time.perf_counter()
    for first in range(0, rows, per_transaction):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO e VALUES ('bench', ?, ?, ?)",
            [
                (f"a{n % per_transaction}", n, PAYLOAD)
                for n in range(first, min(rows, first + per_transaction))
            ],
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return rows / elapsed


async def _bare_jetstream(url: str, rows: int, at_once: int) -> float:
    client = await nats.connect(url)  # pyright: ignore[reportUnknownMemberType]
    js = client.jetstream()  # pyright: ignore[reportUnknownMemberType]
    stream = f"BARE{os.getpid()}{time.monotonic_ns()}"
    await js.add_stream(name=stream, subjects=[f"{stream}.*"])  # pyright: ignore[reportUnknownMemberType]
    started = time.perf_counter()
    for first in range(0, rows, at_once):
        count = min(at_once, rows - first)
        await asyncio.gather(*(js.publish(f"{stream}.s{i}", PAYLOAD) for i in range(count)))
    elapsed = time.perf_counter() - started
    await js.delete_stream(stream)
    await client.close()
    return rows / elapsed


# -- recovery ---------------------------------------------------------------------------------


async def _recovery(journal: Journal, events: int, snapshot: bool) -> float:
    """Milliseconds from start to the first reply of an actor with ``events`` events."""
    entity = f"r{events}{'s' if snapshot else ''}{time.monotonic_ns()}"
    persistence_id = PersistenceId("bench", entity)
    last = 0
    codec = Ledger.event_codec
    batch = [codec.encode(Added(amount=1))] * min(1000, events)
    while last < events:
        last = await journal.append(persistence_id, last, batch[: min(len(batch), events - last)])
    if snapshot:
        payload = Total(amount=events).model_dump_json().encode()
        await journal.save_snapshot(SnapshotRecord(persistence_id, last, 1, payload))
    started = time.perf_counter()
    ledger = Ledger(entity, journal)
    async with ledger as ref:
        assert await ref.ask(Add(amount=0)) == events
    return (time.perf_counter() - started) * 1000


def _row(name: str, unit: str, n: int, mine: float, bare: float, label: str, target: str = "") -> Row:
    return Row(
        loop="asyncio",
        scenario=name,
        unit=unit,
        n=n,
        actorio=mine,
        baseline=bare,
        baseline_label=label,
        ratio=mine / bare,
        target=target,
        met=mine / bare >= 0.7 if target else None,
    )


async def _best(measure: Callable[[], Awaitable[float]], repeat: int, higher: bool = True) -> float:
    figures = [await measure() for _ in range(repeat)]
    return max(figures) if higher else min(figures)


async def run_persistence(scale: float, repeat: int, nats_url: str | None = None) -> list[Row]:
    """The persistence rows, on a temporary SQLite file and a nats-server started for the run
    (or the one at ``nats_url``: streams and buckets of their own, deleted or left there)."""
    single = max(20, int(1000 * scale))
    crowd, rounds = max(10, int(1000 * scale)), max(2, int(5 * scale))
    history = max(100, int(100_000 * scale))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="actorio-bench-") as directory:
        files = iter(range(1_000_000))

        def path() -> str:
            return str(Path(directory) / f"j{next(files)}.sqlite3")

        async def sqlite_actors(actors: int, events: int) -> float:
            async with SqliteJournal(path()) as journal:
                return await _actors(journal, actors, events)

        async def sqlite_bare(rows_: int, per: int) -> float:
            return await asyncio.to_thread(_bare_sqlite, path(), rows_, per)

        mine = await _best(lambda: sqlite_actors(1, single), repeat)
        bare = await _best(lambda: sqlite_bare(single, 1), repeat)
        rows.append(_row("sqlite persist, 1 actor", "events/s", single, mine, bare, "sqlite3, 1 per commit"))
        mine = await _best(lambda: sqlite_actors(crowd, rounds), repeat)
        bare = await _best(lambda: sqlite_bare(crowd * rounds, crowd), repeat)
        rows.append(
            _row(
                f"sqlite persist, {crowd:,} actors",
                "events/s",
                crowd * rounds,
                mine,
                bare,
                f"sqlite3, {crowd:,} per commit",
                ">= 0.7x",
            )
        )
        async with SqliteJournal(path()) as journal:
            full = await _best(lambda: _recovery(journal, history, False), repeat, higher=False)
            snapshot = await _best(lambda: _recovery(journal, history, True), repeat, higher=False)
        rows.append(_row("sqlite recovery", "ms", history, full, snapshot, "with a snapshot"))
    with contextlib.ExitStack() as stack:
        url = nats_url if nats_url is not None else stack.enter_context(LocalServer()).url

        async def js_actors(actors: int, events: int) -> float:
            async with await JetStreamJournal.connect(url, prefix=f"b{time.monotonic_ns()}") as journal:
                return await _actors(journal, actors, events)

        mine = await _best(lambda: js_actors(1, single), repeat)
        bare = await _best(lambda: _bare_jetstream(url, single, 1), repeat)
        rows.append(_row("jetstream persist, 1 actor", "events/s", single, mine, bare, "js.publish + ack"))
        mine = await _best(lambda: js_actors(crowd, rounds), repeat)
        bare = await _best(lambda: _bare_jetstream(url, crowd * rounds, crowd), repeat)
        rows.append(
            _row(
                f"jetstream persist, {crowd:,} actors",
                "events/s",
                crowd * rounds,
                mine,
                bare,
                f"js.publish, {crowd:,} at once",
                ">= 0.7x",
            )
        )
        async with await JetStreamJournal.connect(url, prefix=f"r{time.monotonic_ns()}") as shared:
            full = await _best(lambda: _recovery(shared, history, False), repeat, higher=False)
            snapshot = await _best(lambda: _recovery(shared, history, True), repeat, higher=False)
        rows.append(_row("jetstream recovery", "ms", history, full, snapshot, "with a snapshot"))
    return rows
