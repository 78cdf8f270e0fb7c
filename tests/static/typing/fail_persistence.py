"""Must fail: persisting or applying an event that is not one of the actor's events, an `apply`
that takes fewer events than the class declares or returns another state, and saving a state of
another type. See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is ever
run.
"""

from __future__ import annotations

from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import DurableStateActor, Event, EventSourcedActor


class Deposit(Message[int]):
    amount: int


class Deposited(Event):
    amount: int


class Withdrawn(Event):
    amount: int


class Unrelated(Event):
    pass


class Balance(BaseModel):
    amount: int = 0


class Other(BaseModel):
    pass


class Account(EventSourcedActor[Deposit, Balance, Deposited | Withdrawn]):
    def apply(self, state: Balance, event: Deposited | Withdrawn) -> Balance:
        return state

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Unrelated())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        return 0

    async def mixed(self) -> None:
        await self.persist(Deposited(amount=1), Unrelated())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def apply_wrong(self) -> None:
        self.apply(self.state, Unrelated())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def state_wrong(self) -> None:
        self.state = Other()  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]


class NarrowApply(EventSourcedActor[Deposit, Balance, Deposited | Withdrawn]):
    def apply(self, state: Balance, event: Deposited) -> Balance:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        return state

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        return 0


class OtherState(EventSourcedActor[Deposit, Balance, Deposited]):
    def apply(self, state: Balance, event: Deposited) -> Other:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        return Other()

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        return 0


class Saver(DurableStateActor[Deposit, Balance]):
    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.save(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        return 0
