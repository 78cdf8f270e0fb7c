"""The bank account entity: its messages and its actor class, shared by the hosts and the client."""

from __future__ import annotations

import os

from actorio import Actor, Message, handles


class Deposit(Message):
    """Told: add ``amount`` to the balance."""

    amount: int


class Balance(Message[int]):
    """Asked: the balance."""


class Host(Message[int]):
    """Asked: the process id of the host the account is active in."""


class Account(Actor[Deposit | Balance | Host]):
    """One account by key (``Account(key)``), active on one host at a time. Its balance lives in
    memory: it starts at 0 each time the account is activated (after an idle passivation or a
    move), until actorio's persistence keeps it."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.balance = 0

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        self.balance += msg.amount

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.balance

    @handles(Host)
    async def host(self, msg: Host) -> int:
        return os.getpid()
