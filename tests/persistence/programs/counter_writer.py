"""Counts up a durable-state counter, one ask at a time, and says so after each reply.

    python counter_writer.py JOURNAL COUNTER

JOURNAL is a SQLite file or a nats:// URL. The handler only changes ``state``: the actor saves
it. After each reply: ``acked <value>``, until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from persistent_account import open_journal
from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import DurableStateActor


class Total(BaseModel):
    value: int = 0


class Increment(Message[int]):
    pass


class Counter(DurableStateActor[Increment, Total]):
    entity_type = "counter"

    @handles(Increment)
    async def increment(self, msg: Increment) -> int:
        self.state = Total(value=self.state.value + 1)  # saved before the reply
        return self.state.value


async def main(where: str, counter_id: str) -> None:
    async with await open_journal(where) as journal, Counter(counter_id, journal) as counter:
        while True:
            print(f"acked {await counter.ask(Increment())}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
