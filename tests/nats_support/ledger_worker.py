"""A persistent entity host process: ``python -m tests.nats_support.ledger_worker --url URL
--prefix PREFIX --record FILE [--durable]``.

It hosts `Ledger` (type name ``ledger``, or ``--name``; event-sourced, in a JetStream journal of
``--prefix`` on the same server) with ``--lease`` seconds, durably with ``--durable`` (a
JetStream mailbox, retries 0.05 s apart), records what its handlers did to ``--record``, prints
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

from actorio import Backoff, Message, handles
from actorio.nats import Durable, Node, fencing_token
from actorio.persistence import Event, EventSourcedActor, JetStreamJournal


class Credit(Message):
    """Told: credit ``amount``; ``seq`` is the sender's sequence number for this key (1, 2, ...)."""

    seq: int
    amount: int


class Statement(Message[list[int]]):
    """Asked: the sequence numbers credited, in the order they were persisted."""


class Token(Message[int]):
    """Asked: the activation's fencing token."""


class Where(Message[str]):
    """Asked: the node id of the activation."""


class Credited(Event):
    seq: int
    amount: int


class Book(BaseModel):
    seqs: list[int] = []
    balance: int = 0


class Ledger(EventSourcedActor[Credit | Statement | Token | Where, Book, Credited]):
    """Records ``handle <key> <node> <seq>`` for a credit it persists, ``again`` for one it had
    persisted already (delivered again after its host died before acknowledging it)."""

    entity_type = "ledger"
    node_id = ""
    record: TextIO | None = None

    def apply(self, state: Book, event: Credited) -> Book:
        return Book(seqs=[*state.seqs, event.seq], balance=state.balance + event.amount)

    def note(self, kind: str, seq: int) -> None:
        if self.record is not None:
            key = self.persistence_id.entity_id
            print(kind, key, type(self).node_id, seq, time.time(), file=self.record, flush=True)

    @handles(Credit)
    async def credit(self, msg: Credit) -> None:
        if msg.seq in self.state.seqs:
            self.note("again", msg.seq)  # persisted before its host died: not twice
            return
        await self.persist(Credited(seq=msg.seq, amount=msg.amount))
        self.note("handle", msg.seq)

    @handles(Statement)
    async def statement(self, msg: Statement) -> list[int]:
        return self.state.seqs

    @handles(Token)
    async def token(self, msg: Token) -> int:
        return fencing_token()

    @handles(Where)
    async def where(self, msg: Where) -> str:
        return type(self).node_id


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--name", default="ledger")
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args(argv)
    journal = await JetStreamJournal.connect(args.url, prefix=args.prefix)
    node = await Node.connect(args.url, reconnect_wait=0.1)
    with args.record.open("a", buffering=1) as record:  # a line at a time: kill -9 loses none
        ledger = type(
            "Ledger", (Ledger,), {"node_id": node.node_id, "record": record, "entity_type": "ledger"}
        )
        durable = Durable(retry_backoff=Backoff(min_delay=0.05, max_delay=0.2)) if args.durable else False
        await node.host(ledger, name=args.name, lease=args.lease, journal=journal, durable=durable)
        print("ready", node.node_id, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await node.close()
    await journal.close()


if __name__ == "__main__":
    # Not in asyncio's debug mode (inherited from the test run): hosts are what a soak loads.
    asyncio.run(main(sys.argv[1:]), debug=False)
