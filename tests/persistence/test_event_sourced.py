"""Event-sourced actors: persist then apply, the reply after the events are durable, recovery
from the latest snapshot and the events after it, conflicts, and the class's checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from actorio import (
    Actor,
    ActorRef,
    Backoff,
    Message,
    SupervisorStrategy,
    dead_letters,
    handles,
)
from actorio.lowlevel import barrier
from actorio.persistence import (
    Event,
    EventRecord,
    EventSourcedActor,
    InMemoryJournal,
    Journal,
    JournalCorrupted,
    PersistenceId,
    SnapshotRecord,
    SqliteJournal,
    WriterConflict,
    copy_journal,
)
from tests.support import bounded

from .support import (
    Account,
    Balance,
    Deposit,
    Deposited,
    GetBalance,
    HeldJournal,
    InsufficientFunds,
    Withdraw,
)

ALICE = PersistenceId("account", "alice")


@pytest.mark.asyncio
async def test_each_reply_comes_after_the_events_are_in_the_journal(journal: Journal) -> None:
    async with Account("alice", journal) as account:
        assert await bounded(account.ask(Deposit(amount=30))) == 30
        assert await journal.last_sequence(ALICE) == 1
        assert await bounded(account.ask(Withdraw(amount=12))) == 18
        assert await journal.last_sequence(ALICE) == 2
        with pytest.raises(InsufficientFunds):
            await bounded(account.ask(Withdraw(amount=100)))
        assert await journal.last_sequence(ALICE) == 2  # a refused command persists nothing
    async with Account("alice", journal) as again:
        assert await bounded(again.ask(GetBalance())) == 18


class SnapshotEveryTwo(Account):
    """The example account, with a snapshot every two events."""

    entity_type = "account"
    snapshot_every = 2


@pytest.mark.asyncio
async def test_an_actor_recovers_from_its_snapshot_and_the_events_after_it(journal: Journal) -> None:
    """On every journal: three deposits (a snapshot after the second), then a new incarnation
    recovers from the snapshot and the third event."""
    async with SnapshotEveryTwo("alice", journal) as account:
        for amount in (1, 2, 4):
            await bounded(account.ask(Deposit(amount=amount)))
    snapshot = await journal.load_snapshot(ALICE)
    assert snapshot is not None
    assert snapshot.sequence == 2
    again = SnapshotEveryTwo("alice", journal)
    async with again:
        await bounded(again.wait_recovered())
        assert await bounded(again.ask(GetBalance())) == 7
        assert again.sequence == 3


@pytest.mark.asyncio
async def test_no_reply_and_no_next_message_until_the_append_returns() -> None:
    journal = HeldJournal()
    async with Account("alice", journal) as account:
        deposit = asyncio.ensure_future(account.ask(Deposit(amount=5)))
        balance = asyncio.ensure_future(account.ask(GetBalance()))
        await bounded(journal.waiting.wait())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not deposit.done()
        assert not balance.done()  # the next message waits for the persist too
        journal.release.set()
        assert await bounded(deposit) == 5
        assert await bounded(balance) == 5


@pytest.mark.asyncio
async def test_recovery_reads_the_latest_snapshot_then_the_events_after_it() -> None:
    journal = InMemoryJournal()
    async with Account("alice", journal) as account:  # snapshot_every = 100
        for _ in range(250):
            await bounded(account.ask(Deposit(amount=1)))
    snapshot = journal.snapshots[ALICE]
    assert (snapshot.sequence, snapshot.version) == (200, 1)
    assert Balance.model_validate_json(snapshot.payload) == Balance(amount=200)
    # Proof that recovery starts at the snapshot: a snapshot that lies is believed.
    journal.snapshots[ALICE] = SnapshotRecord(
        ALICE, 200, 1, Balance(amount=10_000).model_dump_json().encode()
    )
    async with Account("alice", journal) as account:
        assert await bounded(account.ask(GetBalance())) == 10_050


@pytest.mark.asyncio
async def test_a_snapshot_of_another_state_version_is_left_aside() -> None:
    journal = InMemoryJournal()
    await journal.append(ALICE, 0, [Account.event_codec.encode(Deposited(amount=7))])
    await journal.save_snapshot(SnapshotRecord(ALICE, 1, 99, b'{"amount": 10000}'))
    async with Account("alice", journal) as account:
        assert await bounded(account.ask(GetBalance())) == 7


@pytest.mark.asyncio
async def test_a_second_writer_of_one_id_gets_a_conflict_and_writes_nothing(journal: Journal) -> None:
    first = Account("alice", journal)
    second = Account("alice", journal)
    async with first as one, second as two:
        await bounded(second.wait_recovered())  # both recovered an empty account
        assert await bounded(one.ask(Deposit(amount=10))) == 10
        with pytest.raises(WriterConflict, match="another writer got there first"):
            await bounded(two.ask(Deposit(amount=99)))
        assert second.state == Balance(amount=0)  # nothing applied
        with pytest.raises(WriterConflict):  # stale, it stays refused until it recovers
            await bounded(two.ask(Deposit(amount=1)))
    assert [r.sequence async for r in journal.read(ALICE)] == [1]
    async with Account("alice", journal) as account:
        assert await bounded(account.ask(GetBalance())) == 10


class Counted(Event):
    n: int


class Total(BaseModel):
    total: int = 0
    seen: list[int] = []


class Add(Message[int]):
    values: list[int]


class Crash(Message):
    pass


class Counter(EventSourcedActor[Add | Crash, Total, Counted]):
    """Persists one event per value, in one call: all or none."""

    def apply(self, state: Total, event: Counted) -> Total:
        if event.n < 0:
            raise ValueError("negative")
        return Total(total=state.total + event.n, seen=[*state.seen, event.n])

    @handles(Add)
    async def add(self, msg: Add) -> int:
        await self.persist(*(Counted(n=v) for v in msg.values))
        return self.state.total

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash")


@pytest.mark.asyncio
async def test_several_events_in_one_persist_are_numbered_in_order(journal: Journal) -> None:
    async with Counter("c", journal) as counter:
        assert await bounded(counter.ask(Add(values=[1, 2, 3]))) == 6
        assert await bounded(counter.ask(Add(values=[]))) == 6
        assert await bounded(counter.ask(Add(values=[4]))) == 10
    records = [r async for r in journal.read(PersistenceId("Counter", "c"))]
    assert [(r.sequence, r.payload) for r in records] == [
        (1, b'{"n":1}'),
        (2, b'{"n":2}'),
        (3, b'{"n":3}'),
        (4, b'{"n":4}'),
    ]


@pytest.mark.asyncio
async def test_an_apply_that_raises_writes_nothing() -> None:
    journal = InMemoryJournal()
    async with Counter("c", journal) as counter:
        await bounded(counter.ask(Add(values=[1])))
        with pytest.raises(ValueError, match="negative"):
            await bounded(counter.ask(Add(values=[2, -1])))
        assert await bounded(counter.ask(Add(values=[3]))) == 4
    assert await journal.last_sequence(PersistenceId("Counter", "c")) == 2


class Parent(Actor[Add]):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.child: ActorRef[Add | Crash] | None = None

    async def mainloop_setup(self) -> None:
        self.child = await self.supervise(lambda: Counter("c", self.journal), name="counter")

    @handles(Add)
    async def add(self, msg: Add) -> int:
        assert self.child is not None
        return await self.child.ask(msg)


@pytest.mark.asyncio
async def test_a_restarted_incarnation_recovers_what_the_last_one_persisted() -> None:
    journal = InMemoryJournal()
    parent = Parent(journal)
    async with parent as ref:
        assert await bounded(ref.ask(Add(values=[5, 6]))) == 11
        assert parent.child is not None
        await parent.child.tell(Crash())  # restarted by its supervisor
        # Asked directly (the parent's task must stay free to restart it): the ask waits in the
        # mailbox, which the next incarnation takes over once it has recovered.
        assert await bounded(parent.child.ask(Add(values=[1]))) == 12


@pytest.mark.asyncio
async def test_a_gap_in_the_stored_numbers_is_reported() -> None:
    journal = InMemoryJournal()
    await journal.append(PersistenceId("Counter", "c"), 0, [Counter.event_codec.encode(Counted(n=1))] * 3)
    del journal.events[PersistenceId("Counter", "c")][1]
    counter = Counter("c", journal)
    await counter.start()
    with pytest.raises(JournalCorrupted, match="event 3 follows event 1"):
        await bounded(counter.wait_recovered())
    with pytest.raises(JournalCorrupted):  # the actor failed with it
        await bounded(counter.run_until_stopped())


@pytest.mark.asyncio
@pytest.mark.parametrize("stored", [[0, 1, 2], [-1]])
async def test_an_event_numbered_0_or_below_is_reported(stored: list[int]) -> None:
    journal = InMemoryJournal()
    event = Counter.event_codec.encode(Counted(n=1))
    journal.events[PersistenceId("Counter", "c")] = [
        EventRecord(PersistenceId("Counter", "c"), n, event.name, event.version, event.payload, 0.0)
        for n in stored
    ]
    counter = Counter("c", journal)
    await counter.start()
    with pytest.raises(
        JournalCorrupted, match=rf"^Counter/c: an event is numbered {stored[0]}: events are numbered from 1$"
    ):
        await bounded(counter.wait_recovered())
    with pytest.raises(JournalCorrupted):  # the actor failed with it
        await bounded(counter.run_until_stopped())


@pytest.mark.asyncio
async def test_a_copy_into_memory_keeps_the_numbers_and_recovers_as_the_recording_does(
    tmp_path: Path,
) -> None:
    """`copy_journal` into memory (to replay a recording) keeps the events' numbers: a gap after
    the snapshot fails the replay's recovery as it fails the recording's, and events the
    snapshot covers, removed, do not. Into another journal, which numbers from 1, a gap raises
    rather than be renumbered away."""
    pid = PersistenceId("Counter", "c")
    recording = InMemoryJournal()
    await recording.append(pid, 0, [Counter.event_codec.encode(Counted(n=n)) for n in (1, 10, 100, 1000)])
    snapshot = Total(total=11, seen=[1, 10]).model_dump_json().encode()
    await recording.save_snapshot(SnapshotRecord(pid, 2, Counter.state_version, snapshot))
    del recording.events[pid][:2]  # events 1 and 2, which the snapshot covers: recovery reads 3, 4

    async def recovered(journal: Journal) -> int:
        counter = Counter("c", journal)
        async with counter:
            await bounded(counter.wait_recovered())
            return counter.state.total

    assert await recovered(recording) == 1111
    replay = InMemoryJournal()
    assert await copy_journal(recording, replay) == 2
    assert [r.sequence async for r in replay.read(pid)] == [3, 4]
    assert await recovered(replay) == 1111
    async with SqliteJournal(tmp_path / "copy.sqlite3") as elsewhere:
        with pytest.raises(JournalCorrupted, match=r"^Counter/c: event 3 follows event 0$"):
            await copy_journal(recording, elsewhere)
    del recording.events[pid][0]  # event 3: a gap after the snapshot
    gapped = InMemoryJournal()
    assert await copy_journal(recording, gapped) == 1
    for journal in (recording, gapped):
        counter = Counter("c", journal)
        await counter.start()
        with pytest.raises(JournalCorrupted, match=r"^Counter/c: event 4 follows event 2$"):
            await bounded(counter.wait_recovered())
        with pytest.raises(JournalCorrupted):
            await bounded(counter.run_until_stopped())


class PatientParent(Parent):
    """Restarts its counter for as long as it fails, after a short backoff (as a node does)."""

    supervisor_strategy = SupervisorStrategy(max_restarts=1000, within=1.0)

    async def mainloop_setup(self) -> None:
        self.child = await self.supervise(
            lambda: Counter("c", self.journal),
            name="counter",
            backoff=Backoff(min_delay=0.01, max_delay=0.05),
        )


@pytest.mark.asyncio
async def test_messages_waiting_for_a_recovery_that_fails_on_what_is_stored_fail_with_its_error() -> None:
    """No restart recovers a corrupt journal: what waits for one is not kept waiting (an ask would
    wait for its timeout), each is treated as a handler failing with the error would be."""
    journal = InMemoryJournal()
    await journal.append(PersistenceId("Counter", "c"), 0, [Counter.event_codec.encode(Counted(n=1))] * 3)
    kept = journal.events[PersistenceId("Counter", "c")].pop(1)
    dead_letters.clear()
    parent = PatientParent(journal)
    async with parent:
        assert await bounded(barrier(parent))  # its setup ran: its child started
        assert parent.child is not None
        for _ in range(3):  # each one waits in the mailbox for an incarnation, which fails it
            with pytest.raises(JournalCorrupted, match="event 3 follows event 1"):
                await bounded(parent.child.ask(Add(values=[1])))
        await parent.child.tell(Add(values=[2]))
        with pytest.raises(JournalCorrupted):  # queued behind the tell: failed after it
            await bounded(parent.child.ask(Add(values=[3])))
        [letter] = dead_letters.of(reason="failed")
        assert isinstance(letter.message, Add)
        assert letter.message.values == [2]
        assert isinstance(letter.error, JournalCorrupted)
        # Repaired: the next incarnation recovers, and the next ask is served.
        journal.events[PersistenceId("Counter", "c")].insert(1, kept)
        assert await bounded(parent.child.ask(Add(values=[4]))) == 7


def test_the_class_names_its_state_and_events() -> None:
    class Untyped(EventSourcedActor):
        pass

    with pytest.raises(TypeError, match="must name its state and events"):
        Untyped("x", InMemoryJournal())
    with pytest.raises(TypeError, match="state type must be a pydantic model"):

        class NotAModel(EventSourcedActor[Message[Any], int, Counted]):  # type: ignore[type-var, actorio-handler]
            pass

    with pytest.raises(TypeError, match="snapshot_every must be None or an int >= 1"):

        class BadEvery(EventSourcedActor[Message[Any], Total, Counted]):  # type: ignore[actorio-handler]
            snapshot_every = 0

    with pytest.raises(TypeError, match="names its events but defines no apply"):

        class NoApply(EventSourcedActor[Message[Any], Total, Counted]):  # type: ignore[actorio-handler]
            pass

    with pytest.raises(TypeError, match=r"Recovering\.recover handles Deposit, but the runtime calls"):

        class Recovering(EventSourcedActor[Deposit, Balance, Deposited]):
            def apply(self, state: Balance, event: Deposited) -> Balance:
                return state

            @handles(Deposit)
            async def recover(self, msg: Deposit) -> int:  # type: ignore[override]
                return 0

    with pytest.raises(ValueError, match="invalid entity type"):

        class BadType(EventSourcedActor[Message[Any], Total, Counted]):  # type: ignore[actorio-handler]
            entity_type = "a.b"


def test_persisting_an_event_the_class_did_not_declare_is_a_type_error_at_run_time_too() -> None:
    class Other(Event):
        pass

    with pytest.raises(TypeError, match="Other is not one of this actor's events"):
        Counter.event_codec.encode(Other())
