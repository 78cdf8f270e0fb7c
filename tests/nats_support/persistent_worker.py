"""A persistent entity host process: ``python -m tests.nats_support.persistent_worker --url URL
--prefix PREFIX --record FILE``.

It hosts `Vault` (type name ``vault``, event-sourced, in a JetStream journal of ``--prefix`` on
the same server) with ``--lease`` seconds, records what its handlers did to ``--record``, prints
``ready <node id>``, and runs until its standard input closes (or it is killed, or paused).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel

from actorio import Message, handles
from actorio.nats import Node
from actorio.persistence import Event, EventSourcedActor, JetStreamJournal


class Put(Message[int]):
    """Asked: persist ``amount`` (after ``wait`` real seconds); the new total."""

    amount: int
    wait: float = 0.0


class Total(Message[int]):
    """Asked: the total."""


class Where(Message[str]):
    """Asked: the node id of the activation."""


class Remind(Message[None]):
    """Asked: store a durable reminder that tells `Fire` in ``delay`` seconds."""

    amount: int
    delay: float


class Fire(Message):
    """The reminder's message: persist ``amount``, record ``fired``."""

    amount: int


class PutIn(Event):
    """An amount put in."""

    amount: int


class Sum(BaseModel):
    amount: int = 0


class Vault(EventSourcedActor[Put | Total | Where | Remind | Fire, Sum, PutIn]):
    """Records ``waiting``, ``written`` or ``refused <error>`` for each `Put`, with its amount."""

    entity_type = "vault"
    node_id = ""
    record: TextIO

    def apply(self, state: Sum, event: PutIn) -> Sum:
        return Sum(amount=state.amount + event.amount)

    def note(self, *words: object) -> None:
        print(*words, type(self).node_id, time.time(), file=type(self).record, flush=True)

    @handles(Put)
    async def put(self, msg: Put) -> int:
        if msg.wait:
            self.note("waiting", msg.amount)
            await asyncio.sleep(msg.wait)  # the test pauses the process here
        try:
            await self.persist(PutIn(amount=msg.amount))
        except Exception as error:
            self.note("refused", type(error).__name__, msg.amount)
            raise
        self.note("written", msg.amount)
        return self.state.amount

    @handles(Remind)
    async def remind_later(self, msg: Remind) -> None:
        await self.remind("later", Fire(amount=msg.amount), msg.delay)

    @handles(Fire)
    async def fire(self, msg: Fire) -> None:
        await self.persist(PutIn(amount=msg.amount))
        self.note("fired", msg.amount)

    @handles(Total)
    async def total(self, msg: Total) -> int:
        return self.state.amount

    @handles(Where)
    async def where(self, msg: Where) -> str:
        return type(self).node_id


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    args = parser.parse_args(argv)
    journal = await JetStreamJournal.connect(args.url, prefix=args.prefix)
    node = await Node.connect(args.url, reconnect_wait=0.1)
    with args.record.open("a", buffering=1) as record:
        vault = type("Vault", (Vault,), {"node_id": node.node_id, "record": record, "entity_type": "vault"})
        await node.host(vault, name="vault", lease=args.lease, journal=journal)
        print("ready", node.node_id, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await node.close()
    await journal.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]), debug=False)
