"""A journal error that is not a conflict may or may not have written the events: the actor reads
them back and carries on from what is stored, rather than meeting `WriterConflict` until it is
restarted. In memory (each outcome forced), then against a real nats-server whose stream is
deleted or which is stopped and started again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import nats
import pytest

from actorio import ActorRef, Message, handles
from actorio.nats import LocalServer
from actorio.persistence import (
    EventData,
    EventRecord,
    EventSourcedActor,
    InMemoryJournal,
    JetStreamJournal,
    Journal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    WriterConflict,
)
from tests.support import bounded

from .journals import unique_prefix
from .support import Account, Balance, Deposit, Deposited, GetBalance

ALICE = PersistenceId("account", "alice")


class FailingJournal(InMemoryJournal):
    """`fail` = "after" writes the next append and then fails (a lost acknowledgement), "before"
    fails without writing; `fail_reads` fails the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = ""
        self.fail_reads = False
        self.records_read = 0

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        fail, self.fail = self.fail, ""
        if fail == "before":
            raise PersistenceError("disk error")
        last = await super().append(persistence_id, expected_sequence, events)
        if fail == "after":
            raise PersistenceError("no acknowledgement")
        return last

    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        if self.fail_reads:
            raise PersistenceError("unreachable")
        return await super().last_sequence(persistence_id)

    def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        if self.fail_reads:
            raise PersistenceError("unreachable")
        return self._counted(super().read(persistence_id, after))

    async def _counted(self, records: AsyncIterator[EventRecord]) -> AsyncIterator[EventRecord]:
        async for record in records:
            self.records_read += 1
            yield record


class DepositEach(Message[int]):
    amounts: list[int]


class SplitAccount(EventSourcedActor[DepositEach | Deposit | GetBalance, Balance, Deposited]):
    """The account, with a command that persists several events at once."""

    entity_type = "account"

    def apply(self, state: Balance, event: Deposited) -> Balance:
        return Balance(amount=state.amount + event.amount)

    @handles(DepositEach)
    async def deposit_each(self, msg: DepositEach) -> int:
        await self.persist(*[Deposited(amount=amount) for amount in msg.amounts])
        return self.state.amount

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> int:
        await self.persist(Deposited(amount=msg.amount))
        return self.state.amount

    @handles(GetBalance)
    async def balance(self, msg: GetBalance) -> int:
        return self.state.amount


async def recovered_balance(journal: Journal) -> int:
    async with Account("alice", journal) as account:
        return await bounded(account.ask(GetBalance()))


@pytest.mark.asyncio
async def test_events_written_without_acknowledgement_are_read_back_and_the_persist_returns() -> None:
    journal = FailingJournal()
    account = Account("alice", journal)
    async with account as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        journal.fail = "after"
        assert await bounded(ref.ask(Deposit(amount=7))) == 12  # stored: as if acknowledged
        assert await bounded(ref.ask(Deposit(amount=1))) == 13  # no conflict after it
        assert account.sequence == 3
    assert await recovered_balance(journal) == 13


@pytest.mark.asyncio
async def test_events_not_written_are_reported_as_such_and_the_actor_carries_on() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        journal.fail = "before"
        with pytest.raises(
            PersistenceError, match="disk error \\(read back: the events were not stored, so far\\)"
        ):
            await bounded(ref.ask(Deposit(amount=7)))
        assert await bounded(ref.ask(Deposit(amount=1))) == 1
    assert await recovered_balance(journal) == 1


@pytest.mark.asyncio
async def test_a_persist_that_stays_unsure_is_read_back_by_the_next_one() -> None:
    journal = FailingJournal()
    account = Account("alice", journal)
    async with account as ref:
        await bounded(account.wait_recovered())
        journal.fail, journal.fail_reads = "after", True
        with pytest.raises(PersistenceError, match="no acknowledgement"):
            await bounded(ref.ask(Deposit(amount=7)))
        assert await bounded(ref.ask(GetBalance())) == 0  # unsure: not applied yet
        journal.fail_reads = False
        with pytest.raises(PersistenceError, match=r"turned out to be stored.*persisted nothing"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert await bounded(ref.ask(GetBalance())) == 7
        assert await bounded(ref.ask(Deposit(amount=1))) == 8  # and it carries on
    assert await recovered_balance(journal) == 8


@pytest.mark.asyncio
async def test_events_of_another_writer_found_when_reading_back_are_a_conflict() -> None:
    journal = FailingJournal()
    account = Account("alice", journal)
    async with account as ref:
        await bounded(account.wait_recovered())
        journal.fail = "before"
        journal.fail_reads = True
        with pytest.raises(PersistenceError, match="disk error"):
            await bounded(ref.ask(Deposit(amount=7)))
        journal.fail_reads = False
        await journal.append(ALICE, 0, [Account.event_codec.encode(Deposited(amount=100))])  # another writer
        with pytest.raises(WriterConflict, match="account/alice: another writer got there first"):
            await bounded(ref.ask(Deposit(amount=1)))
    assert await recovered_balance(journal) == 100


@pytest.mark.asyncio
async def test_a_read_back_reads_its_own_events_not_all_those_after_them() -> None:
    """Once the unsure persist is found, the events others appended after it are not read (they
    were all loaded into one list); another writer's events are still a conflict saying the
    journal's last event."""
    journal = FailingJournal()
    account = SplitAccount("alice", journal)
    async with account as ref:
        await bounded(account.wait_recovered())
        journal.fail, journal.fail_reads = "after", True
        with pytest.raises(PersistenceError, match="no acknowledgement"):
            await bounded(ref.ask(DepositEach(amounts=[3, 4])))
        journal.fail_reads = False
        later = [Account.event_codec.encode(Deposited(amount=1))] * 1000  # another writer's
        await journal.append(ALICE, 2, later)
        journal.records_read = 0
        with pytest.raises(PersistenceError, match="turned out to be stored"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert journal.records_read == 2
        assert await bounded(ref.ask(GetBalance())) == 7
        with pytest.raises(WriterConflict):
            await bounded(ref.ask(Deposit(amount=1)))
    other = SplitAccount("alice", journal)  # from the start: not its events, a conflict
    async with other as ref:
        await bounded(other.wait_recovered())
        journal.fail, journal.fail_reads = "before", True
        with pytest.raises(PersistenceError, match="disk error"):
            await bounded(ref.ask(Deposit(amount=5)))
        journal.fail_reads = False
        await journal.append(ALICE, 1002, [Account.event_codec.encode(Deposited(amount=9))] * 500)
        journal.records_read = 0
        with pytest.raises(WriterConflict, match=r"expected to write after 1002, the journal holds 1502"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert journal.records_read == 1


async def _read_back_as_not_stored(journal: FailingJournal, ref: ActorRef[Any]) -> None:
    """Alice deposits 5, then 7 without an acknowledgement, read back as not stored; the 7 is
    then stored after all, late (as a client re-sending what it buffered while reconnecting
    stores it, or a cluster after the read)."""
    assert await bounded(ref.ask(Deposit(amount=5))) == 5
    journal.fail = "before"
    with pytest.raises(PersistenceError, match=r"\(read back: the events were not stored, so far\)"):
        await bounded(ref.ask(Deposit(amount=7)))
    await journal.append(ALICE, 1, [Account.event_codec.encode(Deposited(amount=7))])


@pytest.mark.asyncio
async def test_a_persist_stored_late_is_found_by_the_next_conflict_and_the_actor_carries_on() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        await _read_back_as_not_stored(journal, ref)
        with pytest.raises(PersistenceError, match="was stored after all") as raised:
            await bounded(ref.ask(Deposit(amount=1)))
        assert not isinstance(raised.value, WriterConflict)
        assert await bounded(ref.ask(GetBalance())) == 12
        assert await bounded(ref.ask(Deposit(amount=1))) == 13
    assert await recovered_balance(journal) == 13


@pytest.mark.asyncio
async def test_a_persist_stored_late_is_found_when_the_next_one_is_unsure() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        await _read_back_as_not_stored(journal, ref)
        journal.fail = "before"  # the next append fails too, without writing: the 7 is found
        with pytest.raises(PersistenceError, match="was stored after all"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert await bounded(ref.ask(Deposit(amount=2))) == 14
    assert await recovered_balance(journal) == 14


@pytest.mark.asyncio
async def test_another_writer_after_a_read_back_is_still_a_conflict() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        journal.fail = "before"
        with pytest.raises(PersistenceError, match="not stored"):
            await bounded(ref.ask(Deposit(amount=7)))
        await journal.append(ALICE, 1, [Account.event_codec.encode(Deposited(amount=100))])
        with pytest.raises(WriterConflict, match="another writer got there first"):
            await bounded(ref.ask(Deposit(amount=1)))
    assert await recovered_balance(journal) == 105


@pytest.mark.asyncio
async def test_of_two_persists_read_back_as_not_stored_the_one_stored_late_is_found() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        for amount in (7, 9):
            journal.fail = "before"
            with pytest.raises(PersistenceError, match="not stored, so far"):
                await bounded(ref.ask(Deposit(amount=amount)))
        await journal.append(ALICE, 1, [Account.event_codec.encode(Deposited(amount=7))])  # late
        with pytest.raises(PersistenceError, match="was stored after all"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert await bounded(ref.ask(Deposit(amount=1))) == 13
    assert await recovered_balance(journal) == 13


@pytest.mark.asyncio
async def test_the_longest_persist_that_matches_is_the_one_taken_as_stored() -> None:
    """A persist of [3, 4] read back as not stored, then stored late; the next persist, [3],
    fails without an acknowledgement: what is stored begins like both, and is the [3, 4]."""
    journal = FailingJournal()
    account = SplitAccount("alice", journal)
    async with account as ref:
        await bounded(account.wait_recovered())
        journal.fail = "before"
        with pytest.raises(PersistenceError, match="not stored, so far"):
            await bounded(ref.ask(DepositEach(amounts=[3, 4])))
        encode = Account.event_codec.encode
        await journal.append(ALICE, 0, [encode(Deposited(amount=3)), encode(Deposited(amount=4))])
        journal.fail = "before"
        with pytest.raises(PersistenceError, match="was stored after all"):
            await bounded(ref.ask(Deposit(amount=3)))
        assert await bounded(ref.ask(GetBalance())) == 7
        assert account.sequence == 2
        assert await bounded(ref.ask(Deposit(amount=1))) == 8
    assert await recovered_balance(journal) == 8


@pytest.mark.asyncio
async def test_a_command_retried_after_a_read_back_is_the_one_taken_when_both_match() -> None:
    """The 7 read back as not stored; the caller retries it, stored without acknowledgement:
    what is stored matches both, and the retry returns (the 7 is stored once)."""
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        journal.fail = "before"
        with pytest.raises(PersistenceError, match="not stored, so far"):
            await bounded(ref.ask(Deposit(amount=7)))
        journal.fail = "after"
        assert await bounded(ref.ask(Deposit(amount=7))) == 12
        assert await bounded(ref.ask(Deposit(amount=1))) == 13
    assert await recovered_balance(journal) == 13


class SnappingAccount(SplitAccount):
    entity_type = "account"
    snapshot_every = 2


@pytest.mark.asyncio
async def test_events_found_stored_late_count_for_the_snapshots() -> None:
    journal = FailingJournal()
    async with SnappingAccount("alice", journal) as ref:
        await _read_back_as_not_stored(journal, ref)  # 5 at 1; the 7 at 2, stored late
        with pytest.raises(PersistenceError, match="was stored after all"):
            await bounded(ref.ask(Deposit(amount=1)))
    snapshot = await journal.load_snapshot(ALICE)
    assert snapshot is not None
    assert snapshot.sequence == 2


@pytest.mark.asyncio
async def test_a_conflict_whose_read_back_fails_says_nothing_was_written() -> None:
    journal = FailingJournal()
    async with Account("alice", journal) as ref:
        await _read_back_as_not_stored(journal, ref)
        journal.fail_reads = True
        with pytest.raises(PersistenceError, match=r"nothing was written.*reading it back failed") as raised:
            await bounded(ref.ask(Deposit(amount=1)))
        assert not isinstance(raised.value, WriterConflict)  # the other writer may be itself
        journal.fail_reads = False
        with pytest.raises(PersistenceError, match="was stored after all"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert await bounded(ref.ask(Deposit(amount=1))) == 13
    assert await recovered_balance(journal) == 13


# -- JetStream, against a real server ------------------------------------------------------------


@pytest.mark.asyncio
async def test_jetstream_a_deleted_stream_means_no_acknowledgement_and_a_failed_read_back(
    nats_url: str,
) -> None:
    prefix = unique_prefix()
    journal = await JetStreamJournal.connect(nats_url, prefix=prefix, timeout=2.0)
    async with journal, Account("alice", journal) as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        admin = await nats.connect(nats_url)
        try:
            await admin.jetstream().delete_stream(f"{prefix.upper()}_EVENTS_account")
        finally:
            await admin.close()
        # The deposit of 5 went with the stream: the read-back says so, and does not conclude
        # "not stored" from an empty history.
        with pytest.raises(PersistenceError, match=r"no acknowledgement.*reading them back failed.*is gone"):
            await bounded(ref.ask(Deposit(amount=7)))


@pytest.mark.asyncio
async def test_jetstream_a_stopped_server_leaves_the_persist_unsure_until_it_is_back() -> None:
    with LocalServer() as server:
        async with await JetStreamJournal.connect(
            server.url, timeout=1.0, reconnect_time_wait=0.1, max_reconnect_attempts=-1
        ) as journal:
            account = Account("alice", journal)
            async with account as ref:
                assert await bounded(ref.ask(Deposit(amount=5))) == 5
                await asyncio.get_running_loop().run_in_executor(None, server.stop)
                with pytest.raises(PersistenceError, match="may or may not be stored"):
                    await bounded(ref.ask(Deposit(amount=7)))
                await asyncio.get_running_loop().run_in_executor(None, server.start)
                # Whether the server got the deposit of 7 (the client may send what it buffered
                # when it reconnects, even after a read found nothing) is for the next persists to
                # find out; either way the actor ends where a recovery ends, without a conflict.
                balance = None
                failures: list[PersistenceError] = []
                while balance is None and len(failures) < 20:  # reconnecting takes a moment
                    try:
                        balance = await bounded(ref.ask(Deposit(amount=1)))
                    except PersistenceError as error:
                        failures.append(error)
                assert not [f for f in failures if isinstance(f, WriterConflict)]
                assert balance in (6, 13)
                assert account.sequence == (2 if balance == 6 else 3)
            assert await recovered_balance(journal) == balance


class ForgingJournal(FailingJournal):
    """Its reads give ``forged`` after what it holds (as rows written past a gap would read)."""

    def __init__(self) -> None:
        super().__init__()
        self.forged: list[EventRecord] = []

    def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        return self._then_forged(super().read(persistence_id, after))

    async def _then_forged(self, records: AsyncIterator[EventRecord]) -> AsyncIterator[EventRecord]:
        async for record in records:
            yield record
        for record in self.forged:
            yield record


@pytest.mark.asyncio
async def test_a_read_back_that_does_not_follow_on_is_corrupted_not_a_late_persist() -> None:
    """Event 3 after event 1, holding what a persist read back as not stored held, was taken as
    that persist stored late (and the next write then met a conflict that said nothing of a
    corrupt journal)."""
    journal = ForgingJournal()
    account = Account("alice", journal)
    async with account as ref:
        assert await bounded(ref.ask(Deposit(amount=5))) == 5
        journal.fail = "before"
        with pytest.raises(PersistenceError, match="the events were not stored"):
            await bounded(ref.ask(Deposit(amount=7)))
        payload = Account.event_codec.encode(Deposited(amount=7)).payload
        journal.forged = [EventRecord(ALICE, 3, "Deposited", 1, payload, 0.0)]
        journal.fail = "before"
        with pytest.raises(JournalCorrupted, match="account/alice: event 3 follows event 1"):
            await bounded(ref.ask(Deposit(amount=1)))
        assert (account.sequence, await bounded(ref.ask(GetBalance()))) == (1, 5)
