"""A persist or a save cancelled while the journal writes (a deadline of the handler's own around
it, its task cancelled). The journal may finish the write: SQLite's group commit writes what it
took, and a JetStream request already sent is stored. So the actor treats the write as unsure and
reads back first, instead of meeting `WriterConflict` (its own write, unknown to it) until it is
restarted. On JetStream, journal errors that are not conflicts are `PersistenceError`, and a
read leaves no consumer behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from actorio import ActorRef, Message, handles
from actorio.persistence import (
    DurableStateActor,
    EventData,
    EventRecord,
    EventSourcedActor,
    InMemoryJournal,
    JetStreamJournal,
    Journal,
    PersistenceError,
    PersistenceId,
    SqliteJournal,
    StateRecord,
    WriterConflict,
)
from tests.support import bounded

from .journals import unique_prefix
from .support import Balance, Deposit, Deposited, GetBalance

pytestmark = pytest.mark.asyncio


class StallingJournal(InMemoryJournal):
    """An in-memory journal that can stall, once each: an append (after it stored the events)
    or a state save (after it saved) until cancelled, and a read of events or of the state
    before it reads anything; `entered` is set when one stalls."""

    def __init__(self) -> None:
        super().__init__()
        self.stall_write = False
        self.stall_read = False
        self.entered = asyncio.Event()

    async def _stall(self) -> None:
        self.entered.set()
        await asyncio.Event().wait()  # until cancelled

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        last = await super().append(persistence_id, expected_sequence, events)
        if self.stall_write:
            self.stall_write = False
            await self._stall()
        return last

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        revision = await super().save_state(persistence_id, expected_revision, version, payload)
        if self.stall_write:
            self.stall_write = False
            await self._stall()
        return revision

    async def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        if self.stall_read:
            self.stall_read = False
            await self._stall()
        async for record in super().read(persistence_id, after):
            yield record

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        if self.stall_read:
            self.stall_read = False
            await self._stall()
        return await super().load_state(persistence_id)


async def _cancelled_when_stalled(journal: StallingJournal, write: Coroutine[Any, Any, None]) -> None:
    """Run ``write`` until the journal stalls in it, then cancel it (a deadline around it)."""
    journal.entered.clear()
    task = asyncio.ensure_future(write)
    await journal.entered.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class CancelledDeposit(Message[int]):
    """Deposit, cancelling the persist where the journal stalls (``stall``: "write" once the
    events are stored, "read" as it reads back a persist left unsure first)."""

    amount: int
    stall: str


class HastyDeposit(Message[int]):
    """Deposit, but give up on the persist once the journal has it."""

    amount: int


class Hasty(EventSourcedActor[HastyDeposit | CancelledDeposit | Deposit | GetBalance, Balance, Deposited]):
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

    @handles(CancelledDeposit)
    async def cancelled_deposit(self, msg: CancelledDeposit) -> int:
        journal = self.journal
        assert isinstance(journal, StallingJournal)
        setattr(journal, f"stall_{msg.stall}", True)
        await _cancelled_when_stalled(journal, self.persist(Deposited(amount=msg.amount)))
        return self.state.amount

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount))
        return self.state.amount

    @handles(GetBalance)
    async def balance(self, msg: GetBalance) -> int:
        return self.state.amount


FOUND_STORED = ("turned out to be stored", "was stored after all", "was saved after all")
"""What a write refused after a cancelled one may say: the cancelled one was found stored by the
read-back before it (``unsure``), or, read back as not stored while its request was still on its
way, found stored later (``late``, the JetStream case). Both are the documented outcomes; a
conflict is not."""


async def _writes(ref: ActorRef[Any], messages: list[Message[int]]) -> list[int | None]:
    """Each reply, or ``None`` for a write refused because the cancelled one before it turned out
    to be stored (at most one; anything else fails the test: a conflict above all)."""
    outcomes: list[int | None] = []
    refused: list[PersistenceError] = []
    for message in messages:
        try:
            outcomes.append(await bounded(ref.ask(message)))
        except PersistenceError as error:
            refused.append(error)
            outcomes.append(None)
    assert len(refused) <= 1, refused
    assert not [e for e in refused if isinstance(e, WriterConflict)], refused
    assert all(any(text in str(e) for text in FOUND_STORED) for e in refused), refused
    assert outcomes[-1] is not None  # the actor carries on
    return outcomes


async def test_a_cancelled_persist_is_read_back_not_taken_for_another_writer(journal: Journal) -> None:
    hasty = Hasty("h1", journal)
    async with hasty as ref:
        await bounded(ref.ask(HastyDeposit(amount=1)))
        outcomes = await _writes(ref, [Deposit(amount=10), Deposit(amount=100), Deposit(amount=1000)])
        live = hasty.state.amount
    assert outcomes[-1] == live
    # The deposits not refused, and the cancelled one if it was stored: nothing else, no twice.
    kept = sum(amount for amount, outcome in zip((10, 100, 1000), outcomes, strict=True) if outcome)
    assert live in (kept, kept + 1)
    if isinstance(journal, SqliteJournal):  # the commit took the cancelled append: it is stored
        assert outcomes == [None, 101, 1101]
    async with Hasty("h1", journal) as again:
        assert await bounded(again.ask(GetBalance())) == live  # what recovery finds, no more


class Counter(BaseModel):
    n: int = 0


class Bump(Message[int]):
    pass


class HastyBump(Message[int]):
    pass


class CancelledBumps(Message[int]):
    """Save twice, each save cancelled where the journal stalls: the first once the state is
    saved, the second as it reads the first back."""


class Tally(DurableStateActor[Bump | HastyBump | CancelledBumps, Counter]):
    entity_type = "tally"

    @handles(HastyBump)
    async def hasty_bump(self, msg: HastyBump) -> int:
        task = asyncio.ensure_future(self.save(Counter(n=self.state.n + 1)))
        await asyncio.sleep(0)  # the save is in the journal now (or done)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return self.state.n

    @handles(CancelledBumps)
    async def cancelled_bumps(self, msg: CancelledBumps) -> int:
        journal = self.journal
        assert isinstance(journal, StallingJournal)
        journal.stall_write = True
        await _cancelled_when_stalled(journal, self.save(Counter(n=self.state.n + 1)))
        journal.stall_read = True
        await _cancelled_when_stalled(journal, self.save(Counter(n=self.state.n + 10)))
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
        # Read back before each handler runs: it bumps the state as stored, cancelled save or not.
        outcomes = await _writes(ref, [Bump(), Bump(), Bump()])
        live, revision = tally.state.n, tally.revision
    assert outcomes[-1] == live
    # The cancelled save never stored (three bumps after 1), found stored before the next
    # handler (three after 2), or stored late (the next bump refused, taking 2, two after it).
    assert (live, outcomes.count(None)) in {(4, 0), (5, 0), (4, 1)}
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


async def test_a_persist_whose_read_back_is_cancelled_leaves_the_write_unsure_not_forgotten() -> None:
    journal = StallingJournal()
    stalled = Hasty("s1", journal)
    async with stalled as ref:
        assert await bounded(ref.ask(Deposit(amount=1))) == 1
        assert await bounded(ref.ask(CancelledDeposit(amount=10, stall="write"))) == 1  # stored, unsure
        # The next persist reads the unsure one back first, and is cancelled while it reads.
        assert await bounded(ref.ask(CancelledDeposit(amount=100, stall="read"))) == 1
        # Still unsure: read back by the next persist, found stored (not another writer's).
        with pytest.raises(PersistenceError, match="turned out to be stored"):
            await bounded(ref.ask(Deposit(amount=1000)))
        assert await bounded(ref.ask(Deposit(amount=1000))) == 1011
        assert stalled.sequence == 3
    async with Hasty("s1", journal) as again:
        assert await bounded(again.ask(GetBalance())) == 1011


async def test_a_save_whose_read_back_is_cancelled_leaves_the_write_unsure_not_forgotten() -> None:
    journal = StallingJournal()
    tally = Tally("t3", journal)
    async with tally as ref:
        assert await bounded(ref.ask(Bump())) == 1
        assert await bounded(ref.ask(CancelledBumps())) == 1  # both rolled back: unsure
        # The save after the handler reads the first one back (found saved), not a conflict.
        assert await bounded(ref.ask(Bump())) == 3
        assert tally.revision == 3
    async with Tally("t3", journal) as again:
        assert await bounded(again.ask(Bump())) == 4
