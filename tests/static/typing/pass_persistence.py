"""Must pass: persistent actors typed end to end (state, events, replies)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

from actorio import ActorRef, Message, ask, handles
from actorio.persistence import DurableStateActor, Event, EventSourcedActor, Journal, upcaster


class Deposit(Message[int]):
    amount: int


class GetBalance(Message[int]):
    pass


class Deposited(Event):
    event_version = 2
    amount: int

    @upcaster(from_version=1)
    @classmethod
    def from_cents(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {"amount": fields["cents"] // 100}


class Withdrawn(Event):
    amount: int


class Balance(BaseModel):
    amount: int = 0


class Account(EventSourcedActor[Deposit | GetBalance, Balance, Deposited | Withdrawn]):
    def apply(self, state: Balance, event: Deposited | Withdrawn) -> Balance:
        if isinstance(event, Deposited):
            return Balance(amount=state.amount + event.amount)
        return Balance(amount=state.amount - event.amount)

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount))
        await self.persist(Deposited(amount=1), Withdrawn(amount=1))
        assert_type(self.state, Balance)
        assert_type(self.sequence, int)
        assert_type(self.apply(self.state, Withdrawn(amount=2)), Balance)
        return self.state.amount

    @handles(GetBalance)
    async def balance(self, msg: GetBalance) -> int:
        await self.remind("later", GetBalance(), 60.0)
        return self.state.amount


class Increment(Message[int]):
    pass


class Count(BaseModel):
    value: int = 0


class Counter(DurableStateActor[Increment, Count]):
    @handles(Increment)
    async def increment(self, msg: Increment) -> int:
        await self.save(Count(value=self.state.value + 1))
        assert_type(self.state, Count)
        assert_type(self.revision, int)
        return self.state.value


async def use(journal: Journal) -> None:
    account = Account("alice", journal)
    ref = await account.start()
    assert_type(ref, ActorRef[Deposit | GetBalance])
    assert_type(await ask(ref, Deposit(amount=3)), int)
    counter = await Counter("c", journal).start()
    assert_type(await ask(counter, Increment()), int)
