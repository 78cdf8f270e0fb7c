"""Deposits 1 into an account, again and again, and says so after each acknowledgement.

    python account_writer.py JOURNAL ACCOUNT NAME COUNT [BATCH]

JOURNAL is a SQLite file or a nats:// URL; COUNT deposits (0: until killed), each with the memo
``NAME-i``. After each reply: ``acked NAME-i <balance>``. If another writer got there first:
``conflict NAME-i``, exit status 3. BATCH > 1 deposits that many events in one persist.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from persistent_account import Balance, Deposit, Deposited, Withdrawn, open_journal

from actorio import Message, handles
from actorio.persistence import EventSourcedActor, WriterConflict


class DepositMany(Message[int]):
    memo: str
    count: int


class BatchAccount(EventSourcedActor[Deposit | DepositMany, Balance, Deposited | Withdrawn]):
    """The example's account (its entity type, events and state), with a command that persists
    several deposits at once."""

    entity_type = "account"

    def apply(self, state: Balance, event: Deposited | Withdrawn) -> Balance:
        sign = 1 if isinstance(event, Deposited) else -1
        return Balance(amount=state.amount + sign * event.amount)

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount, memo=msg.memo))
        return self.state.amount

    @handles(DepositMany)
    async def deposit_many(self, msg: DepositMany) -> int:
        await self.persist(*(Deposited(amount=1, memo=f"{msg.memo}/{n}") for n in range(msg.count)))
        return self.state.amount


async def main(where: str, account_id: str, name: str, count: int, batch: int) -> int:
    async with await open_journal(where) as journal, BatchAccount(account_id, journal) as account:
        numbers = itertools.count() if count == 0 else range(count)
        for i in numbers:
            memo = f"{name}-{i}"
            try:
                if batch > 1:
                    balance = await account.ask(DepositMany(memo=memo, count=batch))
                else:
                    balance = await account.ask(Deposit(amount=1, memo=memo))
            except WriterConflict:
                print(f"conflict {memo}", flush=True)
                return 3
            print(f"acked {memo} {balance}", flush=True)
    return 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    batch_size = int(arguments[4]) if len(arguments) > 4 else 1
    sys.exit(asyncio.run(main(arguments[0], arguments[1], arguments[2], int(arguments[3]), batch_size)))
