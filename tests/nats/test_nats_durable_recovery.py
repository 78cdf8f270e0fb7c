"""A persistent entity type with a durable mailbox whose entity cannot recover its state, on a real
nats-server: a failed recovery, at the first start or at a restart's, is a failed start (the
key's stored messages are kept and tried again, and hold at most half of their shard's pump, so
the shard's other keys are served); no stored message is handed to an incarnation before it has
recovered; a key stopped while it recovers is stopped with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from pydantic import BaseModel

from actorio import Actor, Backoff, Message, SupervisorStrategy, handles
from actorio.lowlevel import mailbox_of, task_of
from actorio.nats import Durable, EntityHost, EntityRef, Node
from actorio.nats._durable_entities import DurableMailbox, shard_of
from actorio.nats._entity_persistence import ready_for_messages
from actorio.nats._shard_keys import MAX_ACK_PENDING
from actorio.persistence import (
    DurableStateActor,
    InMemoryJournal,
    PersistenceError,
    PersistenceId,
    SchemaMismatch,
    StateRecord,
)
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 60.0  # real seconds: no lease runs out in a test
GUARD = 2.0  # a key's entity is stopped within GUARD / 4 s, and its pump looks every GUARD / 4 s
BOUND = 20.0  # real seconds any wait below may take on a busy machine
QUICK = Durable(max_deliver=3, retry_backoff=Backoff(min_delay=0.05, max_delay=0.2))
CORRUPT = b'{"seqs": "many"}'  # a state that no longer fits the model: SchemaMismatch


class Seqs(BaseModel):
    seqs: list[int] = []


class Note(Message):
    seq: int


class Boom(Message):
    pass


class Seen(Message[list[int]]):
    pass


class Once(Message):
    """Its handler fails the first time it runs (delivered again after the retry backoff)."""

    seq: int


class Arm(Message):
    pass


class Keeper(DurableStateActor[Note | Once | Arm | Boom | Seen, Seqs]):
    entity_type = "keeper"
    made: ClassVar[list[Keeper]] = []
    failed_once: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Keeper.made.append(self)

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.state = Seqs(seqs=[*self.state.seqs, msg.seq])

    @handles(Once)
    async def once(self, msg: Once) -> None:
        if not Keeper.failed_once:
            Keeper.failed_once = True
            raise RuntimeError("the first try fails")
        self.state = Seqs(seqs=[*self.state.seqs, msg.seq])

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        await self.reference.tell(Boom())  # in this process: nothing stored fails with it

    @handles(Boom)
    async def boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")  # a restart: the next incarnation recovers again

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[int]:
        return self.state.seqs


@pytest_asyncio.fixture
async def pair(nats_url: str) -> AsyncIterator[tuple[Node, Node]]:
    """A hosting node and a client node."""
    Keeper.made.clear()
    Keeper.failed_once = False
    async with await Node.connect(nats_url) as hosting, await Node.connect(nats_url) as client:
        yield hosting, client


def unique(name: str) -> str:
    return f"{name}{time.monotonic_ns() % 10**9}"


def failed_starts(host: EntityHost, key: str) -> int:
    """How many starts in a row the key's entity failed, as its shard's pump counts them."""
    assert host.durable is not None
    pump = host.durable.pumps.get(str(shard_of(key, 64)))
    state = None if pump is None else pump.keys.get(key)
    return 0 if state is None else state.failed_starts


def handed_over(host: EntityHost, key: str) -> Callable[[], Awaitable[bool]]:
    """A check: the key's worker holds one of its messages (waiting for its entity to recover)."""

    async def check() -> bool:
        assert host.durable is not None
        pump = host.durable.pumps.get(str(shard_of(key, 64)))
        state = None if pump is None else pump.keys.get(key)
        return state is not None and state.current != 0

    return check


def failing(host: EntityHost, key: str, starts: int = 1) -> Callable[[], Awaitable[bool]]:
    """A check: the key's entity failed at least ``starts`` starts in a row."""

    async def check() -> bool:
        return failed_starts(host, key) >= starts

    return check


async def spoiled(memory: InMemoryJournal, key: str) -> StateRecord:
    """Overwrite the key's stored state with one that no longer fits; what was stored before."""
    record = await memory.load_state(PersistenceId("keeper", key))
    assert record is not None
    await memory.save_state(record.persistence_id, record.revision, 1, CORRUPT)
    return record


class HeldLater(InMemoryJournal):
    """An in-memory journal whose state reads, once `held`, wait until `release` is set; with
    ``fail_once``, the first of them then raises `PersistenceError` (a journal away for a moment)
    and reads are no longer held."""

    def __init__(self, *, fail_once: bool = False) -> None:
        super().__init__()
        self.held = False
        self.fail_once = fail_once
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        if self.held:
            self.reading.set()
            await self.release.wait()
            if self.fail_once:
                self.fail_once = self.held = False
                raise PersistenceError("the journal is away for a moment")
        return await super().load_state(persistence_id)


async def repair(memory: InMemoryJournal, record: StateRecord) -> None:
    """Store ``record``'s state again, over the one that `spoiled` it."""
    spoilt = await memory.load_state(record.persistence_id)
    assert spoilt is not None
    await memory.save_state(record.persistence_id, spoilt.revision, 1, record.payload)


async def started(
    pair: tuple[Node, Node],
    kind: type[Keeper],
    journal: InMemoryJournal,
    *,
    max_deliver: int,
    supervision: SupervisorStrategy | None = None,
) -> tuple[EntityHost, DurableMailbox, EntityRef[Any]]:
    """``kind`` hosted durably on ``journal``, its key ``k`` told `Note` 1 and asked: started and
    recovered. The host, its durable mailbox, and a reference to the key."""
    hosting, client = pair
    name = unique(kind.entity_type)
    durable = Durable(max_deliver=max_deliver, retry_backoff=Backoff(min_delay=0.05, max_delay=0.2))
    host = await hosting.host(
        kind, name=name, journal=journal, lease=LEASE, guard=GUARD, durable=durable, supervision=supervision
    )
    assert host.durable is not None
    ref: EntityRef[Any] = client.entity(name, "k", kind)
    await ref.tell(Note(seq=1))
    assert await ref.ask(Seen(), timeout=BOUND) == [1]
    return host, host.durable, ref


async def test_a_key_whose_stored_state_does_not_fit_is_a_key_that_cannot_start(
    pair: tuple[Node, Node],
) -> None:
    """Its messages fill its shard's pump, then the newest half of them go to the dead-letter
    stream: the shard's other keys are served (before, the key's messages waited for an
    incarnation that never recovered, and the whole shard stopped)."""
    hosting, client = pair
    memory = InMemoryJournal()
    await memory.save_state(PersistenceId("keeper", "stuck"), 0, 1, CORRUPT)
    name = unique("keeper")
    host = await hosting.host(Keeper, name=name, journal=memory, lease=LEASE, guard=GUARD, durable=QUICK)
    assert host.durable is not None
    assert shard_of("k73", 64) == shard_of("stuck", 64)
    stuck = client.entity(name, "stuck", Keeper)
    for seq in range(1, MAX_ACK_PENDING + 100):
        await stuck.tell(Note(seq=seq))
    other = client.entity(name, "k73", Keeper)
    await other.tell(Note(seq=1))
    assert await other.ask(Seen(), timeout=BOUND) == [1]
    [letter] = await host.durable.dead_letters(limit=1)
    assert letter.error_type == "EntityNotStarted"
    assert "SchemaMismatch" in letter.error


async def test_a_restart_whose_recovery_fails_is_a_failed_start_too(pair: tuple[Node, Node]) -> None:
    """A key that started, then restarts and cannot recover: the same, its shard's other keys
    served (before, the key's worker waited for an incarnation that recovers, and its messages
    filled the pump)."""
    hosting, client = pair
    memory = InMemoryJournal()
    name = unique("keeper")
    host = await hosting.host(Keeper, name=name, journal=memory, lease=LEASE, guard=GUARD, durable=QUICK)
    stuck = client.entity(name, "stuck", Keeper)
    await stuck.tell(Note(seq=0))
    assert await stuck.ask(Seen(), timeout=BOUND) == [0]  # started and recovered: served
    await spoiled(memory, "stuck")
    await stuck.tell(Boom())  # a restart: its recovery, and every later one, fails
    for seq in range(1, MAX_ACK_PENDING + 100):
        await stuck.tell(Note(seq=seq))
    other = client.entity(name, "k73", Keeper)
    await other.tell(Note(seq=1))
    assert await other.ask(Seen(), timeout=BOUND) == [1]
    assert failed_starts(host, "stuck") >= 1


async def test_stored_tells_wait_for_an_incarnation_that_recovers(pair: tuple[Node, Node]) -> None:
    """No stored message is handed to an incarnation before it has recovered, so none is failed by
    a recovery that fails (nor counted as a delivery): once the state fits again, each is
    handled."""
    memory = InMemoryJournal()
    host, durable, ref = await started(pair, Keeper, memory, max_deliver=2)
    record = await spoiled(memory, "k")
    await ref.tell(Boom())
    await ref.tell(Note(seq=2))
    await wait_until(failing(host, "k", starts=3), BOUND)  # past max_deliver (2): still kept
    assert await durable.dead_letters(limit=None) == []
    await repair(memory, record)
    assert await ref.ask(Seen(), timeout=BOUND) == [1, 2]


async def test_closing_a_host_stops_a_key_that_is_recovering(pair: tuple[Node, Node]) -> None:
    """The entity of a key stopped while it recovers is stopped before its shard's lease is
    released (the node's close returns): two entities of a key never run at once."""
    hosting, client = pair
    memory = HeldLater()
    memory.held = True
    name = unique("keeper")
    await hosting.host(Keeper, name=name, journal=memory, lease=LEASE, guard=GUARD, durable=QUICK)
    await client.entity(name, "k", Keeper).tell(Note(seq=1))
    await asyncio.wait_for(memory.reading.wait(), BOUND)
    [recovering] = Keeper.made
    # Prompt: the key stops as it recovers (before, the close waited for it its whole timeout).
    await asyncio.wait_for(hosting.close(timeout=10 * BOUND), BOUND)
    assert not recovering.running


class Duck(Actor[Note | Seen]):
    """Not a persistent actor, though it has a persistence id and a journal (a projection, say)."""

    made: ClassVar[int] = 0

    def __init__(self, key: str, journal: InMemoryJournal) -> None:
        super().__init__()
        self.persistence_id = PersistenceId("duck", key)
        self.journal = journal
        self.seqs: list[int] = []
        Duck.made += 1

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.seqs.append(msg.seq)

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[int]:
        return self.seqs


async def test_an_actor_shaped_like_a_persistent_one_is_served_as_any_other(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    journal = InMemoryJournal()
    name = unique("duck")
    Duck.made = 0
    await hosting.host(
        lambda key: Duck(key, journal), name=name, journal=journal, lease=LEASE, guard=GUARD, durable=QUICK
    )
    ref = client.entity(name, "k", Duck)
    await ref.tell(Note(seq=1))
    assert await ref.ask(Seen(), timeout=BOUND) == [1]
    assert Duck.made == 1


async def test_a_message_waiting_for_a_restart_that_fails_to_recover_is_not_delivered(
    pair: tuple[Node, Node],
) -> None:
    """A stored message handed to the key while its restarted entity recovers, whose recovery
    then fails, is kept as for a failed start: not given back to the stream, so its delivery
    count is not spent (before, its first real handling counted as its second delivery, and one
    failure of its handler moved it to the dead-letter stream with max_deliver=2)."""
    Keeper.failed_once = False
    memory = HeldLater(fail_once=True)
    host, durable, ref = await started(pair, Keeper, memory, max_deliver=2)
    memory.held = True
    await ref.tell(Arm())  # the entity restarts; its recovery waits for `release`
    await asyncio.wait_for(memory.reading.wait(), BOUND)
    await ref.tell(Once(seq=2))

    await wait_until(handed_over(host, "k"), BOUND)
    memory.release.set()  # the recovery fails; the next one succeeds
    assert await ref.ask(Seen(), timeout=BOUND) == [1, 2]
    assert await durable.dead_letters(limit=None) == []


class EarlyFailure(DurableStateActor[Note | Seen, Seqs]):
    """Its setup fails (before its recovery) the first ``fails`` times."""

    entity_type = "early"
    fails: ClassVar[int] = 0
    made: ClassVar[int] = 0

    async def mainloop_setup(self) -> None:
        EarlyFailure.made += 1
        if EarlyFailure.made <= EarlyFailure.fails:
            raise OSError("what this entity needs is not there yet")
        await super().mainloop_setup()

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.state = Seqs(seqs=[*self.state.seqs, msg.seq])

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[int]:
        return self.state.seqs


async def test_a_setup_that_fails_before_its_recovery_is_a_failed_start(pair: tuple[Node, Node]) -> None:
    """Tried again after the retry backoff, its message kept (before, the key was started again at
    once, thousands of times a second, its message given back each time until the stream moved
    it to the dead-letter stream)."""
    hosting, client = pair
    EarlyFailure.fails, EarlyFailure.made = 3, 0  # more than 2 * max_deliver
    name = unique("early")
    one = Durable(max_deliver=1, retry_backoff=Backoff(min_delay=0.05, max_delay=0.2))
    host = await hosting.host(
        EarlyFailure, name=name, journal=InMemoryJournal(), lease=LEASE, guard=GUARD, durable=one
    )
    assert host.durable is not None
    ref = client.entity(name, "k", EarlyFailure)
    await ref.tell(Note(seq=1))
    assert await ref.ask(Seen(), timeout=BOUND) == [1]
    assert EarlyFailure.made <= 2 * (EarlyFailure.fails + 1)  # one start each (or a restart raced)
    assert await host.durable.dead_letters(limit=None) == []


class NoRecovery(DurableStateActor[Seen, Seqs]):
    """Its setup does not call its base's: nothing recovered (against the documented rule)."""

    entity_type = "norecovery"

    async def mainloop_setup(self) -> None:
        pass

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[int]:
        return [7]


class Afresh(DurableStateActor[Seen, Seqs]):
    """Starts from an empty state when the stored one no longer fits."""

    entity_type = "afresh"

    async def mainloop_setup(self) -> None:
        try:
            await super().mainloop_setup()
        except SchemaMismatch:
            self.state = Seqs()

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[int]:
        return [8]


@pytest.mark.parametrize("kind", [NoRecovery, Afresh])
async def test_an_entity_that_goes_on_without_recovering_is_served(
    pair: tuple[Node, Node], kind: type[NoRecovery | Afresh]
) -> None:
    """A subclass that catches its recovery's error and goes on, or does not recover at all, is
    served as it is, in this process, published durably, and as a durable entity type."""
    hosting, client = pair
    memory = InMemoryJournal()
    for key in ("p", "k"):
        await memory.save_state(PersistenceId(kind.entity_type, key), 0, 1, CORRUPT)
    expected = [7] if kind is NoRecovery else [8]
    async with kind("p", memory) as local:
        assert await local.ask(Seen(), timeout=BOUND) == expected
    name = unique("pub")
    await hosting.publish(name, lambda: kind("p", memory), durable=QUICK)
    assert await client.ref(name, kind, durable=True).ask(Seen(), timeout=BOUND) == expected
    entities = unique("ent")
    await hosting.host(kind, name=entities, journal=memory, lease=LEASE, guard=GUARD, durable=QUICK)
    assert await client.entity(entities, "k", kind).ask(Seen(), timeout=BOUND) == expected


async def test_an_incarnation_killed_while_idle_leaves_its_successor_nothing_before_it_recovers(
    pair: tuple[Node, Node],
) -> None:
    """The mailbox of an incarnation cancelled while it waited for messages still holds its
    (cancelled) waiting future while the next one recovers: that is not a mainloop waiting for
    messages (before, a stored tell was handed over, failed by the recovery that then failed,
    and, with max_deliver=1, moved to the dead-letter stream)."""
    memory = HeldLater()
    host, durable, ref = await started(pair, Keeper, memory, max_deliver=1)
    [first] = Keeper.made
    mailbox = mailbox_of(first)
    assert mailbox is not None

    async def idle() -> bool:
        return mailbox.waiting is not None and not mailbox.waiting.done()

    await wait_until(idle, BOUND)
    record = await spoiled(memory, "k")
    memory.held = True
    task = task_of(first)
    assert task is not None
    task.cancel()  # killed while idle: its supervisor restarts it
    await asyncio.wait_for(memory.reading.wait(), BOUND)
    second = mailbox.actor
    assert second is not first
    assert not ready_for_messages(second, mailbox)
    await ref.tell(Note(seq=2))

    await wait_until(handed_over(host, "k"), BOUND)
    memory.release.set()  # the recovery fails, and so do the key's starts after it

    await wait_until(failing(host, "k"), BOUND)
    await repair(memory, record)
    assert await ref.ask(Seen(), timeout=BOUND) == [1, 2]
    assert await durable.dead_letters(limit=None) == []


async def test_a_restart_failing_to_recover_under_a_supervision_without_backoff_spends_no_delivery(
    pair: tuple[Node, Node],
) -> None:
    """Restarted at once, the failed incarnations are replaced (and, the restarts used up, the
    mailbox closed) between two looks of the settlement: the message it holds is still kept as
    for a failed start (before, it was given back: a delivery spent, and one failure of its
    handler then moved it to the dead-letter stream with max_deliver=2)."""
    Keeper.failed_once = False
    memory = HeldLater()
    at_once = SupervisorStrategy(max_restarts=2, within=30.0)  # no backoff
    host, durable, ref = await started(pair, Keeper, memory, max_deliver=2, supervision=at_once)
    record = await spoiled(memory, "k")
    memory.held = True
    await ref.tell(Arm())  # a restart, whose recovery waits for `release`
    await asyncio.wait_for(memory.reading.wait(), BOUND)
    await ref.tell(Once(seq=2))

    await wait_until(handed_over(host, "k"), BOUND)
    memory.release.set()  # each restart's recovery fails at once, until the supervisor gives up

    await wait_until(failing(host, "k"), BOUND)
    await repair(memory, record)
    assert await ref.ask(Seen(), timeout=BOUND) == [1, 2]
    assert await durable.dead_letters(limit=None) == []
