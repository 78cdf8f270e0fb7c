"""An actor that arms a durable reminder, and the program that arms it and waits to be killed.

    python reminding.py JOURNAL ID DELAY

prints ``armed <due>`` once the reminder is stored, then waits (for ``kill -9``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from persistent_account import open_journal

from actorio import Message, handles
from actorio.persistence import DurableStateActor


class Ring(Message):
    """What the reminder tells."""


class Arm(Message[float]):
    """Store a reminder ``delay`` seconds from now; the reply is its due time."""

    delay: float


class Rung(BaseModel):
    times: int = 0


class Alarm(DurableStateActor[Ring | Arm, Rung]):
    """Counts, durably, the times it rang."""

    rang: asyncio.Event | None = None

    @handles(Arm)
    async def arm(self, msg: Arm) -> float:
        await self.remind("ring", Ring(), msg.delay)
        (reminder,) = await self.journal.load_reminders(self.persistence_id)
        return reminder.due

    @handles(Ring)
    async def ring(self, msg: Ring) -> None:
        await self.save(Rung(times=self.state.times + 1))
        if self.rang is not None:
            self.rang.set()


async def main(where: str, alarm_id: str, delay: float) -> None:
    async with await open_journal(where) as journal, Alarm(alarm_id, journal) as alarm:
        due = await alarm.ask(Arm(delay=delay))
        print(f"armed {due}", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
