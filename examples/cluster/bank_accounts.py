"""The bank account entity: its messages, its events and its actor class, shared by the hosts and
the client."""

from __future__ import annotations

import os

from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import Event, EventSourcedActor


class Deposit(Message):
    """Told: add ``amount`` to the balance."""

    amount: int


class Balance(Message[int]):
    """Asked: the balance."""


class Host(Message[int]):
    """Asked: the process id of the host the account is active in."""


class Deposited(Event):
    """Money came in (what the journal keeps)."""

    amount: int


class Funds(BaseModel):
    """The account's state: the sum of its deposits."""

    amount: int = 0


class Account(EventSourcedActor[Deposit | Balance | Host, Funds, Deposited]):
    """One account by key, active on one host at a time (``node.host(Account, journal=...)``
    makes it as ``Account(key, journal)``). Its balance is the fold of its events: each
    activation, on whichever host, recovers it from the journal first."""

    entity_type = "account"

    def apply(self, state: Funds, event: Deposited) -> Funds:
        return Funds(amount=state.amount + event.amount)

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        await self.persist(Deposited(amount=msg.amount))  # durable before the next message

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.state.amount

    @handles(Host)
    async def host(self, msg: Host) -> int:
        return os.getpid()
