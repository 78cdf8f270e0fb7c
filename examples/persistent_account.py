"""An account that remembers: deposit, withdraw and balance, event-sourced, surviving ``kill -9``.

    python examples/persistent_account.py accounts.sqlite3 alice deposit 30 withdraw 10 balance
    python examples/persistent_account.py nats://127.0.0.1:4222 alice balance   # same code, JetStream

Each command prints the balance once its event is durable. Run it again, or kill it in the
middle: the balance it printed last is there. The events are at version 2 (``Deposited`` got a
``memo``, which version 1 called ``note``): journals written by version 1 still replay, through
the upcaster declared beside the model.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import BaseModel, PositiveInt

from actorio import Message, handles
from actorio.persistence import Event, EventSourcedActor, Journal, SqliteJournal, upcaster


class Deposit(Message[int]):
    """Put money in; the reply is the new balance."""

    amount: PositiveInt
    memo: str = ""


class Withdraw(Message[int]):
    """Take money out; the reply is the new balance. More than the balance: `InsufficientFunds`."""

    amount: PositiveInt


class GetBalance(Message[int]):
    """The balance."""


class Deposited(Event):
    """Money came in. Version 2: version 1's ``note`` is now ``memo``."""

    event_version = 2
    amount: int
    memo: str = ""

    @upcaster(from_version=1)
    @classmethod
    def note_is_now_memo(cls, fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        fields["memo"] = fields.pop("note", "")
        return fields


class Withdrawn(Event):
    """Money went out."""

    amount: int


class Balance(BaseModel):
    """The account's state."""

    amount: int = 0


class InsufficientFunds(Exception):
    """A withdrawal of more than the balance."""


class Account(EventSourcedActor[Deposit | Withdraw | GetBalance, Balance, Deposited | Withdrawn]):
    """One account: its state is the sum of its events; a snapshot every 100 events."""

    entity_type = "account"
    snapshot_every = 100

    def apply(self, state: Balance, event: Deposited | Withdrawn) -> Balance:
        if isinstance(event, Deposited):
            return Balance(amount=state.amount + event.amount)
        return Balance(amount=state.amount - event.amount)

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount, memo=msg.memo))
        return self.state.amount

    @handles(Withdraw)
    async def withdraw(self, msg: Withdraw) -> int:
        if msg.amount > self.state.amount:
            raise InsufficientFunds(f"balance {self.state.amount}, asked for {msg.amount}")
        await self.persist(Withdrawn(amount=msg.amount))
        return self.state.amount

    @handles(GetBalance)
    async def balance(self, msg: GetBalance) -> int:
        return self.state.amount


async def open_journal(where: str) -> Journal:
    """A SQLite file, or JetStream at a ``nats://`` URL (which needs nats-py: the ``nats`` extra)."""
    if where.startswith(("nats://", "tls://")):
        from actorio.persistence import JetStreamJournal

        return await JetStreamJournal.connect(where)
    return SqliteJournal(where)


async def main(where: str, account_id: str, commands: list[str]) -> None:
    async with await open_journal(where) as journal, Account(account_id, journal) as account:
        words = iter(commands)
        for command in words:
            if command == "balance":
                balance = await account.ask(GetBalance())
            elif command == "deposit":
                balance = await account.ask(Deposit(amount=int(next(words))))
            elif command == "withdraw":
                balance = await account.ask(Withdraw(amount=int(next(words))))
            else:
                raise SystemExit(f"unknown command {command!r}: deposit N, withdraw N, balance")
            print(f"{command}: balance {balance}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
