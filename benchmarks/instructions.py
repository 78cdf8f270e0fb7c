"""Instruction counts of the hot paths, for before/after figures that a busy machine cannot blur.

    python -m benchmarks.instructions                  # every case, under valgrind (callgrind)
    python -m benchmarks.instructions tell_built ask   # some cases
    python -m benchmarks.instructions --run CASE N     # run one case N times (what valgrind runs)

Each case runs under ``valgrind --tool=callgrind`` twice, with ``n`` and ``2n`` iterations; the
difference of the two totals divided by ``n`` is the cost of one iteration, start-up excluded.
Needs valgrind; the figures are instructions, not time, and are stable to about 0.1%.

The slow-handler watchdog is off in the counted runs: it wakes the loop 20 times a second of
wall clock, and under valgrind (about 50 times slower, more on a busy machine) those wake-ups
made 1-3% of the count, moving with the machine's load from one run to the next.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from actorio.lowlevel import configure_alarms

from .baseline import MESSAGES, SIDES, Echo, Ping


class PlainPing(BaseModel):
    """A plain frozen pydantic model with the user's fields only: what `Ping` is compared with."""

    model_config = ConfigDict(frozen=True)

    n: int


def _construct(n: int) -> None:
    for i in range(n):
        Ping(n=i)


def _construct_plain(n: int) -> None:
    for i in range(n):
        PlainPing(n=i)


def _construct_read_date(n: int) -> None:
    for i in range(n):
        date: datetime = Ping(n=i).creation_date
        del date


async def _tell(side: str, n: int, build: bool) -> None:
    actor = SIDES[side]()
    ref = await actor.start()
    message = Ping(n=0)
    if build:
        make = MESSAGES[side][0]  # actorio's validated Ping, or the hand-written side's slotted one
        for i in range(n):
            await ref.tell(make(i))
    else:
        for _ in range(n):
            await ref.tell(message)
    await ref.ask(Echo(n=0))
    await actor.stop()


async def _ask(side: str, n: int, build: bool) -> None:
    actor = SIDES[side]()
    ref = await actor.start()
    message = Echo(n=7)
    if build:
        make = MESSAGES[side][1]
        for i in range(n):
            await ref.ask(make(i))
    else:
        for _ in range(n):
            await ref.ask(message)
    await actor.stop()


async def _ask_concurrent(side: str, n: int) -> None:
    """``n`` asks in all, from 100 askers at once (the scenario "ask, 100 askers")."""
    actor = SIDES[side]()
    ref = await actor.start()

    async def asker(k: int) -> None:
        message = Echo(n=k)
        for _ in range(n // 100):
            await ref.ask(message)

    await asyncio.gather(*(asker(k) for k in range(100)))
    await actor.stop()


async def _spawn_stop(side: str, n: int) -> None:
    make = SIDES[side]
    for _ in range(n):
        actor = make()
        await actor.start()
        await actor.stop()


def _in_loop(run: Callable[[int], Coroutine[Any, Any, None]]) -> Callable[[int], None]:
    return lambda n: asyncio.run(run(n))


NATS_URL = "ACTORIO_BENCH_NATS_URL"
"""The environment variable naming the nats-server of the ``nats_*`` cases (one is started for
the run, or for the case run alone, unless it is set)."""


def _over_nats(measure: str, **options: bool) -> Callable[[int], None]:
    """A case of `benchmarks.remote` (sender and receiver in this process, the server apart)."""

    def run(n: int) -> None:
        from actorio.nats import LocalServer

        from . import remote

        with contextlib.ExitStack() as stack:
            url = os.environ.get(NATS_URL) or stack.enter_context(LocalServer(jetstream=False)).url
            asyncio.run(getattr(remote, measure)(url, n, **options))

    return run


def _encode(n: int) -> None:
    """A remote tell's encoding alone: `Count` (the remote benchmarks' message) to its wire form."""
    from actorio.nats._codec import encode_message

    from .remote import Count

    message = Count(n=1)
    for _ in range(n):
        encode_message(message)


def _validate(n: int) -> None:
    """A remote tell's validation on arrival alone: the wire form of a `Count` to the message."""
    from actorio.nats._codec import encode_message, message_validator

    from .remote import Count, Counter

    validate = message_validator(Counter).validate
    body = encode_message(Count(n=1))
    for _ in range(n):
        validate(body)


JETSTREAM_URL = "ACTORIO_BENCH_JETSTREAM_URL"
"""The environment variable naming the nats-server, JetStream on, of the ``persist_jetstream_*``
and ``entity_*`` cases (one is started for the run, or for the case run alone, unless it is set)."""


def _on_jetstream(measure: str) -> Callable[[int], None]:
    """A case of `benchmarks.entities` (host and sender in this process, the server apart)."""

    def run(n: int) -> None:
        from actorio.nats import LocalServer

        from . import entities

        with contextlib.ExitStack() as stack:
            url = os.environ.get(JETSTREAM_URL) or stack.enter_context(LocalServer()).url
            asyncio.run(getattr(entities, measure)(url, n))

    return run


def _persisting(store: str, actors: int, per_ask: int, bare: bool) -> Callable[[int], None]:
    """A case of `benchmarks.persistence`, ``n`` events: ``actors`` event-sourced actors
    persisting ``per_ask`` events per ask (no actor, ``0``: the journal alone, ``per_ask`` events
    encoded and appended per call), or (``bare``) the bare store beside them doing the same
    durable work. One iteration is one persisted event. A run of fewer than ``actors`` events
    has one actor per event (the counted runs have 2,000 and 4,000: a full crowd), so that every
    actor it starts persists something."""

    def run(n: int) -> None:
        from actorio.nats import LocalServer
        from actorio.persistence import JetStreamJournal, SqliteJournal

        from . import persistence

        crowd = min(actors, max(n, 1))

        if store == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "journal.sqlite3")
                if bare:
                    persistence.bare_sqlite(path, n, per_ask * crowd, crowd)
                    return
                if actors == 0:  # the journal alone

                    async def journal_alone() -> None:
                        async with SqliteJournal(path) as journal:
                            await persistence.appending(journal, n, per_ask)

                    asyncio.run(journal_alone())
                    return

                async def on_sqlite() -> None:
                    async with SqliteJournal(path) as journal:
                        await persistence.persisting_actors(journal, crowd, n // crowd, per_ask)

                asyncio.run(on_sqlite())
            return
        with contextlib.ExitStack() as stack:
            url = os.environ.get(JETSTREAM_URL) or stack.enter_context(LocalServer()).url

            async def on_jetstream() -> None:
                if bare:
                    await persistence.bare_jetstream(url, n, crowd, per_ask)
                    return
                prefix = f"i{os.getpid()}"
                async with await JetStreamJournal.connect(url, prefix=prefix) as journal:
                    if actors == 0:  # the journal alone
                        await persistence.appending(journal, n, per_ask)
                    else:
                        await persistence.persisting_actors(journal, crowd, n // crowd, per_ask)

            asyncio.run(on_jetstream())

    return run


CASES: dict[str, Callable[[int], None]] = {
    "construct": _construct,
    "construct_plain": _construct_plain,
    "construct_read_date": _construct_read_date,
    "tell": _in_loop(lambda n: _tell("actorio", n, False)),
    "tell_built": _in_loop(lambda n: _tell("actorio", n, True)),
    "tell_baseline_built": _in_loop(lambda n: _tell("baseline", n, True)),
    "ask": _in_loop(lambda n: _ask("actorio", n, False)),
    "ask_built": _in_loop(lambda n: _ask("actorio", n, True)),
    "ask_baseline": _in_loop(lambda n: _ask("baseline", n, False)),
    "ask_baseline_built": _in_loop(lambda n: _ask("baseline", n, True)),
    "ask_concurrent": _in_loop(lambda n: _ask_concurrent("actorio", n)),
    "ask_concurrent_baseline": _in_loop(lambda n: _ask_concurrent("baseline", n)),
    "spawn_stop": _in_loop(lambda n: _spawn_stop("actorio", n)),
    "spawn_stop_baseline": _in_loop(lambda n: _spawn_stop("baseline", n)),
    "nats_tell": _over_nats("_actorio_tell"),
    "nats_tell_batched": _over_nats("_actorio_tell", batched=True),
    "nats_tell_bare": _over_nats("_bare_tell"),
    "nats_send": _over_nats("_actorio_send"),
    "nats_send_bare": _over_nats("_bare_send"),
    "encode": _encode,
    "validate": _validate,
    "nats_ask": _over_nats("_actorio_ask"),
    "nats_ask_bare": _over_nats("_bare_ask"),
    "entity_tell": _on_jetstream("entity_tells"),
    "persist_sqlite_crowd": _persisting("sqlite", 1000, 1, bare=False),
    "persist_sqlite_crowd_bare": _persisting("sqlite", 1000, 1, bare=True),
    "persist_sqlite_batch": _persisting("sqlite", 1, 100, bare=False),
    "persist_sqlite_batch_bare": _persisting("sqlite", 1, 100, bare=True),
    "persist_sqlite_batch_journal": _persisting("sqlite", 0, 100, bare=False),
    "persist_jetstream_crowd": _persisting("jetstream", 1000, 1, bare=False),
    "persist_jetstream_crowd_bare": _persisting("jetstream", 1000, 1, bare=True),
    "persist_jetstream_batch": _persisting("jetstream", 1, 100, bare=False),
    "persist_jetstream_batch_bare": _persisting("jetstream", 1, 100, bare=True),
    "persist_jetstream_batch_journal": _persisting("jetstream", 0, 100, bare=False),
}

SIZES = {
    "spawn_stop": 2_000,
    "spawn_stop_baseline": 2_000,
    "nats_tell": 5_000,
    "nats_tell_batched": 5_000,
    "nats_tell_bare": 5_000,
    "nats_send": 5_000,
    "nats_send_bare": 5_000,
    "nats_ask": 1_000,
    "nats_ask_bare": 1_000,
    "entity_tell": 2_000,
    **{case: 2_000 for case in CASES if case.startswith("persist_")},
}
"""Iterations of the smaller run (the other has twice as many); 20,000 unless given here."""


def _instructions(case: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(out, 'callgrind.out')}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--run",
            case,
            str(n),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"{case}: valgrind failed: {done.stderr[-500:]}")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("cases", nargs="*", help=f"of: {', '.join(CASES)}")
    parser.add_argument("--n", type=int, help="iterations of the smaller run (default: 20,000; spawn 2,000)")
    parser.add_argument("--run", nargs=2, metavar=("CASE", "N"), help="run one case N times, uncounted")
    args = parser.parse_args(argv)
    if args.run:
        gc.disable()  # a collection landing in one run and not the other would blur the difference
        configure_alarms(slow_handler=None)  # a watchdog's wake-ups count wall clock, not work
        CASES[args.run[0]](int(args.run[1]))
        return 0
    cases = args.cases or list(CASES)
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}")
    with contextlib.ExitStack() as stack:
        if any(case.startswith("nats_") for case in cases) and NATS_URL not in os.environ:
            from actorio.nats import LocalServer

            os.environ[NATS_URL] = stack.enter_context(LocalServer(jetstream=False)).url
        on_jetstream = ("persist_jetstream", "entity_")
        if any(case.startswith(on_jetstream) for case in cases) and JETSTREAM_URL not in os.environ:
            from actorio.nats import LocalServer

            os.environ[JETSTREAM_URL] = stack.enter_context(LocalServer()).url
        _count(cases, args.n)
    return 0


def _count(cases: list[str], size: int | None) -> None:
    for case in cases:
        n = size or SIZES.get(case, 20_000)
        once, twice = _instructions(case, n), _instructions(case, 2 * n)
        print(f"{case:<22} {(twice - once) / n:>10,.0f} instructions per iteration", flush=True)


if __name__ == "__main__":
    sys.exit(main())
