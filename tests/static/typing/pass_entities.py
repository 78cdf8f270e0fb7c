"""Must pass: references to entities are typed by their class's protocol (``node.entity``)."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from actorio import Actor, ActorRef, Message, ask, handles
from actorio.nats import Durable, EntityRef, Node, StoredDeadLetter


class Deposit(Message):
    amount: int


class Balance(Message[int]):
    pass


class Account(Actor[Deposit | Balance]):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.balance = 0

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        self.balance += msg.amount

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.balance


async def by_class(node: Node) -> None:
    account = node.entity(Account, "alice")
    assert_type(account, EntityRef[Deposit | Balance])
    await account.tell(Deposit(amount=1))
    account.tell_nowait(Deposit(amount=1))
    assert_type(await account.ask(Balance()), int)
    assert_type(await ask(account, Balance()), int)
    plain: ActorRef[Deposit | Balance] = account
    narrow: ActorRef[Deposit] = account
    del plain, narrow


async def by_name(node: Node) -> None:
    account = node.entity("Account", "alice", Account)
    assert_type(account, EntityRef[Deposit | Balance])
    assert_type(await ask(account, Balance()), int)
    anything = node.entity("Account", "alice")
    assert_type(anything, EntityRef[Message[Any]])
    await anything.tell(Deposit(amount=1))


async def hosting(node: Node) -> None:
    host = await node.host(Account, lease=10.0, idle_timeout=60.0)
    assert_type(host.started, int)
    await node.host(Account, name="Savings")


async def hosting_durably(node: Node) -> None:
    host = await node.host(Account, durable=True)
    await node.host(Account, name="Ledger", durable=Durable(max_deliver=3))
    if host.durable is not None:
        assert_type(await host.durable.dead_letters(), list[StoredDeadLetter])
    account = node.entity(Account, "alice")  # the same typed reference, durable or not
    assert_type(await account.ask(Balance()), int)
