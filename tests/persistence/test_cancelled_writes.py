"""A persist or a save cancelled while the journal writes (a deadline of the handler's own around
it, its task cancelled). The journal may finish the write: SQLite's group commit writes what it
took, and a JetStream request already sent is stored. So the actor treats the write as unsure and
reads back first, instead of meeting `WriterConflict` (its own write, unknown to it) until it is
restarted. On JetStream, journal errors that are not conflicts are `PersistenceError`, and a
read leaves no consumer behind."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pydantic import BaseModel

from actorio import ActorRef, Message, handles
from actorio.persistence import (
    DurableStateActor,
    EventSourcedActor,
    JetStreamJournal,
    Journal,
    PersistenceError,
    SqliteJournal,
)
from tests.support import bounded

from .journals import unique_prefix
from .support import Balance, Deposit, Deposited, GetBalance

pytestmark = pytest.mark.asyncio


class HastyDeposit(Message[int]):
    """Deposit, but give up on the persist once the journal has it."""

    amount: int


class Hasty(EventSourcedActor[HastyDeposit | Deposit | GetBalance, Balance, Deposited]):
    entity_type = "hasty"

    def apply(self, state: Balance, event: Deposited) -> Balance:
        return Balance(amount=state.amount + event.amount)

    @handles(HastyDeposit)
    async def hasty_deposit(self, msg: HastyDeposit) -> int:
        task = asyncio.ensure_future(self.persist(Deposited(amount=msg.amount)))
        await asyncio.sleep(0)  # the persist is in the journal's append now (or done)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return self.state.amount

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount))
        return self.state.amount

    @handles(GetBalance)
    async def balance(self, msg: GetBalance) -> int:
        return self.state.amount


async def _deposits(ref: ActorRef[Deposit], amounts: list[int]) -> list[int | None]:
    """Each deposit's balance, or ``None`` for one refused because the write before it turned out
    to be stored (anything else fails the test: a conflict above all)."""
    outcomes: list[int | None] = []
    refused: list[str] = []
    for amount in amounts:
        try:
            outcomes.append(await bounded(ref.ask(Deposit(amount=amount))))
        except PersistenceError as error:
            refused.append(str(error))
            outcomes.append(None)
    assert all("turned out to be stored" in text for text in refused), refused
    return outcomes


async def test_a_cancelled_persist_is_read_back_not_taken_for_another_writer(journal: Journal) -> None:
    hasty = Hasty("h1", journal)
    async with hasty as ref:
        await bounded(ref.ask(HastyDeposit(amount=1)))
        outcomes = await _deposits(ref, [10, 100])
        live = hasty.state.amount
    assert outcomes[-1] == live
    assert outcomes.count(None) <= 1
    if isinstance(journal, SqliteJournal):  # the commit took the cancelled append: it is stored
        assert outcomes == [None, 101]
    async with Hasty("h1", journal) as again:
        assert await bounded(again.ask(GetBalance())) == live  # what recovery finds, no more


class Counter(BaseModel):
    n: int = 0


class Bump(Message[int]):
    pass


class HastyBump(Message[int]):
    pass


class Tally(DurableStateActor[Bump | HastyBump, Counter]):
    entity_type = "tally"

    @handles(HastyBump)
    async def hasty_bump(self, msg: HastyBump) -> int:
        task = asyncio.ensure_future(self.save(Counter(n=self.state.n + 1)))
        await asyncio.sleep(0)  # the save is in the journal now (or done)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return self.state.n

    @handles(Bump)
    async def bump(self, msg: Bump) -> int:
        self.state = Counter(n=self.state.n + 1)
        return self.state.n


async def test_a_cancelled_save_is_read_back_not_taken_for_another_writer(journal: Journal) -> None:
    tally = Tally("t1", journal)
    async with tally as ref:
        assert await bounded(ref.ask(Bump())) == 1
        await bounded(ref.ask(HastyBump()))
        # Read back before the handler runs: it bumps the state as stored, whatever the cancel left.
        after = [await bounded(ref.ask(Bump())) for _ in range(2)]
        live, revision = tally.state.n, tally.revision
    assert after[1] == after[0] + 1 == live
    assert live in (3, 4)  # the cancelled save stored, or not
    async with Tally("t1", journal) as again:
        assert await bounded(again.ask(Bump())) == live + 1  # recovery found what the actor had
    assert revision == live


async def test_jetstream_an_unreachable_server_is_a_persistence_error_for_a_save(nats_url: str) -> None:
    journal = await JetStreamJournal.connect(nats_url, prefix=unique_prefix())
    try:
        tally = Tally("t2", journal)
        async with tally as ref:
            assert await bounded(ref.ask(Bump())) == 1
            await journal.client.close()  # gone under the actor: no save, no read-back
            with pytest.raises(PersistenceError, match="saving the state"):
                await bounded(ref.ask(Bump()))
            assert tally.state.n == 1  # back to what was saved
    finally:
        await journal.close()


async def test_jetstream_reads_leave_no_consumer_on_the_stream(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        async with Hasty("h2", journal) as ref:
            await bounded(ref.ask(Deposit(amount=1)))
        for _ in range(5):  # each recovery reads the events through a consumer of its own
            async with Hasty("h2", journal) as ref:
                assert await bounded(ref.ask(GetBalance())) == 1
        stream = f"{journal.prefix.upper()}_EVENTS_hasty"
        info = await journal.client.jetstream().stream_info(stream)
        assert info.state.consumer_count == 0
