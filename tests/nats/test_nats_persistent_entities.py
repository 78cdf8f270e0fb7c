"""Persistent entities on a real nats-server: an event-sourced or durable-state actor hosted as an
entity type recovers its state on activation, on whichever node; a stale activation writes
nothing; durable reminders wake a passivated entity (mock clock) or one whose host is gone."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import BaseModel

from actorio import DeadLetter, Message, dead_letters, handles
from actorio.nats import EntityFenced, Node, RemoteError
from actorio.nats._entity_persistence import EntityJournal
from actorio.persistence import (
    DurableStateActor,
    InMemoryJournal,
    JetStreamJournal,
    PersistenceId,
    ReminderRecord,
    SqliteJournal,
    WriterConflict,
)
from actorio.testing import MockClock
from tests.nats_support.persistent_worker import Put, Remind, Total, Vault, Where
from tests.nats_support.processes import worker
from tests.persistence.support import Account, Deposit, GetBalance

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 60.0  # real seconds (the bucket's TTL): long enough that no lease runs out in a test
BOUND = 20.0  # real seconds any wait below may take on a busy machine
PERSISTENT_WORKER = "tests.nats_support.persistent_worker"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = BOUND) -> None:
    """Poll ``check`` until it is true, for at most ``timeout`` real seconds (also under the mock
    clock, whose loop time does not move by itself)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} real seconds")
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)


@pytest_asyncio.fixture
async def nodes(nats_url: str) -> AsyncIterator[list[Node]]:
    made = [await Node.connect(nats_url, ask_timeout=BOUND) for _ in range(3)]
    try:
        yield made
    finally:
        for node in made:
            await node.close()


@pytest_asyncio.fixture
async def journal(nats_url: str) -> AsyncIterator[JetStreamJournal]:
    async with await JetStreamJournal.connect(nats_url, prefix=f"t{time.monotonic_ns()}") as made:
        yield made


def unique(name: str) -> str:
    return f"{name}{time.monotonic_ns() % 10**9}"


def not_active(node: Node, entity_type: str, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return key not in node.entities.hosted[entity_type].activations

    return check


# -- state ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["alice", "k=1"])  # a key may hold "=", and so may its persistence id
async def test_an_event_sourced_entity_keeps_its_state_across_passivation(
    nodes: list[Node], journal: JetStreamJournal, key: str
) -> None:
    a, _, client = nodes
    name = unique("acct")
    host = await a.host(Account, name=name, journal=journal, lease=LEASE, idle_timeout=0.5)
    ref = client.entity(name, key, Account)
    assert await ref.ask(Deposit(amount=30)) == 30
    assert await ref.ask(Deposit(amount=12)) == 42
    await eventually(not_active(a, name, key))  # passivated (idle): its memory is gone
    assert host.started == 1
    assert await ref.ask(GetBalance()) == 42  # re-activated: recovered from the journal
    assert host.started == 2
    assert await journal.last_sequence(PersistenceId("account", key)) == 2


async def test_an_entity_moves_to_another_node_with_its_state(
    nodes: list[Node], journal: JetStreamJournal
) -> None:
    a, b, client = nodes
    name = unique("acct")
    hosts = {a.node_id: await a.host(Account, name=name, journal=journal, lease=LEASE)}
    ref = client.entity(name, "bob", Account)
    for amount in range(1, 11):
        await ref.ask(Deposit(amount=amount))
    assert "bob" in hosts[a.node_id].activations
    hosts[b.node_id] = await b.host(Account, name=name, journal=journal, lease=LEASE)
    await a.close()  # its activations are passivated, their keys released
    assert await ref.ask(GetBalance()) == 55
    assert "bob" in hosts[b.node_id].activations
    assert await ref.ask(Deposit(amount=45)) == 100


class Count(BaseModel):
    value: int = 0


class Increment(Message[int]):
    pass


class Counter(DurableStateActor[Increment, Count]):
    entity_type = "counter"

    @handles(Increment)
    async def increment(self, msg: Increment) -> int:
        self.state = Count(value=self.state.value + 1)
        return self.state.value


async def test_a_durable_state_entity_on_sqlite_keeps_its_state_on_one_node(
    nats_url: str, tmp_path: Path
) -> None:
    name = unique("counter")
    async with SqliteJournal(tmp_path / "counters.sqlite3") as sqlite:
        async with await Node.connect(nats_url, ask_timeout=BOUND) as node:
            await node.host(Counter, name=name, journal=sqlite, lease=LEASE, idle_timeout=0.5)
            ref = node.entity(name, "c1", Counter)
            assert [await ref.ask(Increment()) for _ in range(3)] == [1, 2, 3]
            await eventually(not_active(node, name, "c1"))
            assert await ref.ask(Increment()) == 4
        # The whole node gone (a restart): a new one recovers the state from the file.
        async with await Node.connect(nats_url, ask_timeout=BOUND) as node:
            await node.host(Counter, name=name, journal=sqlite, lease=LEASE)
            assert await node.entity(name, "c1", Counter).ask(Increment()) == 5


async def test_host_with_a_journal_takes_a_persistent_class_only(node: Node) -> None:
    class Plain(Counter.__mro__[-3]):  # type: ignore[misc,name-defined]  # actorio.Actor
        pass

    with pytest.raises(TypeError, match="persistent actor class"):
        await node.host(Plain, journal=InMemoryJournal())


async def test_an_ask_to_an_entity_whose_stored_state_does_not_fit_fails_with_why(node: Node) -> None:
    """A recovery that fails on what is stored is not retried in the asker's time: each ask fails
    with the error (the host goes on restarting the entity after its backoff: once the journal
    fits, the key is served again), and the type's other keys are served meanwhile."""
    memory = InMemoryJournal()
    bad = PersistenceId("counter", "bad")
    await memory.save_state(bad, 0, 1, b'{"value": "many"}')
    name = unique("counter")
    await node.host(Counter, name=name, journal=memory, lease=LEASE)
    ref = node.entity(name, "bad", Counter)
    for _ in range(2):  # the first start's, and a restart's after its backoff
        with pytest.raises(RemoteError, match=r"SchemaMismatch: .*counter/bad") as raised:
            await asyncio.wait_for(ref.ask(Increment()), BOUND)
        assert raised.value.type_name == "SchemaMismatch"
    assert await node.entity(name, "good", Counter).ask(Increment()) == 1
    record = await memory.load_state(bad)
    assert record is not None
    await memory.save_state(bad, record.revision, 1, b'{"value": 41}')  # repaired
    assert await asyncio.wait_for(ref.ask(Increment()), BOUND) == 42


# -- two activations cannot both write ----------------------------------------------------------


async def test_a_stale_activation_gets_writer_conflict_and_writes_nothing(
    nodes: list[Node], journal: JetStreamJournal
) -> None:
    """Forced split brain: the key's placement vanishes behind its owner's back (as if its lease
    had expired while it was paused), a second node activates it and writes. The first, still
    believing its lease valid, handles a message: the journal refuses its write."""
    a, b, client = nodes
    name = unique("acct")
    host_a = await a.host(Account, name=name, journal=journal, lease=LEASE)
    ref = client.entity(name, "carol", Account)
    assert await ref.ask(Deposit(amount=10)) == 10  # activated on a, the only host
    assert "carol" in host_a.activations
    host_b = await b.host(Account, name=name, journal=journal, lease=LEASE)
    old = host_a.activations["carol"].mailbox
    assert old is not None
    # The placement disappears (the server expired it, a's clock did not see it yet).
    await host_a.placements._kv.purge("carol")  # pyright: ignore[reportPrivateUsage]
    client.entities._routes.clear()  # pyright: ignore[reportPrivateUsage]
    client.entities.placement = lambda key, hosts: next(h for h in hosts if h.node == b.node_id)
    await eventually(lambda: _hosted_by(client, name, b))
    assert await ref.ask(Deposit(amount=5)) == 15  # b activates, recovers a's event, writes
    assert "carol" in host_b.activations
    # a's activation, still running, handles a deposit: its append expects event 1, the
    # journal holds 2.
    with pytest.raises(WriterConflict):
        await old.actor.ask(Deposit(amount=1000))
    pid = PersistenceId("account", "carol")
    assert await journal.last_sequence(pid) == 2
    assert await ref.ask(GetBalance()) == 15  # the owner recovered every acknowledged event


async def test_a_write_after_the_lease_is_refused_and_writes_nothing() -> None:
    memory = InMemoryJournal()
    allowed = True

    class Index:
        async def note(self, key: str, dues: list[float]) -> None:
            pass

    pid = PersistenceId("counter", "k")
    fenced = EntityJournal(memory, lambda: allowed, Index(), "k", pid)  # type: ignore[arg-type]
    assert await fenced.save_state(pid, 0, 1, b'{"value":1}') == 1
    allowed = False
    with pytest.raises(EntityFenced, match="nothing was written"):
        await fenced.save_state(pid, 1, 1, b'{"value":2}')
    with pytest.raises(EntityFenced):
        await fenced.append(pid, 0, [])
    with pytest.raises(EntityFenced):
        await fenced.save_reminder(ReminderRecord(pid, "r", 1.0, b"{}"))
    assert await memory.load_reminders(pid) == []
    stored = await memory.load_state(pid)
    assert stored is not None
    assert (stored.revision, stored.payload) == (1, b'{"value":1}')


# -- durable reminders ----------------------------------------------------------------------------


class Arm(Message):
    delay: float


class Fired(Message):
    pass


class Fires(Message[int]):
    pass


class Sleeper(DurableStateActor[Arm | Fired | Fires, Count]):
    entity_type = "sleeper"

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        await self.remind("wake", Fired(), msg.delay)

    @handles(Fired)
    async def fired(self, msg: Fired) -> None:
        self.state = Count(value=self.state.value + 1)

    @handles(Fires)
    async def fires(self, msg: Fires) -> int:
        return self.state.value


def fired_count(memory: InMemoryJournal, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        stored = await memory.load_state(PersistenceId("sleeper", key))
        return stored is not None and stored.payload == b'{"value":1}'

    return check


@pytest.mark.mock_clock(autojump_threshold=math.inf)
@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
async def test_a_reminder_wakes_its_passivated_entity(
    nats_url: str, mock_clock: MockClock, durable: bool
) -> None:
    """Also for a durable type, whose wake is stored in its mailbox: it starts the key, and it is
    not a message (no dead letter)."""
    letters: list[DeadLetter] = []
    dead_letters.add_listener(letters.append)
    memory = InMemoryJournal()
    name = unique("sleeper")
    async with await Node.connect(nats_url, ask_timeout=BOUND) as node:
        host = await node.host(
            Sleeper, name=name, journal=memory, lease=LEASE, idle_timeout=100.0, durable=durable
        )
        assert host.reminders is not None
        host.reminders.clock = mock_clock.time
        ref = node.entity(name, "s1", Sleeper)
        await ref.tell(Arm(delay=3600.0))
        await eventually(lambda: _has_reminder(memory, "s1"))
        mock_clock.jump(101.0)  # idle: passivated, the reminder not yet due
        await eventually(not_active(node, name, "s1"))
        assert (await memory.load_state(PersistenceId("sleeper", "s1"))) is None
        await eventually(lambda: _indexed(host.reminders, "s1"))
        mock_clock.jump(3600.0)  # due: a scan wakes the key, which fires its reminder
        await eventually(fired_count(memory, "s1"))
        await eventually(lambda: _no_reminder(memory, "s1"))
        assert await ref.ask(Fires()) == 1
    assert [letter for letter in letters if letter.recipient.startswith(name)] == []


@pytest.mark.mock_clock(autojump_threshold=math.inf)
async def test_a_reminder_fires_on_another_node_after_its_host_is_gone(
    nats_url: str, mock_clock: MockClock
) -> None:
    memory = InMemoryJournal()
    name = unique("sleeper")
    async with await Node.connect(nats_url, ask_timeout=BOUND) as other:
        async with await Node.connect(nats_url, ask_timeout=BOUND) as first:
            host = await first.host(Sleeper, name=name, journal=memory, lease=LEASE)
            assert host.reminders is not None
            host.reminders.clock = mock_clock.time
            await first.entity(name, "s2", Sleeper).tell(Arm(delay=60.0))
            await eventually(lambda: _has_reminder(memory, "s2"))
        # first is gone; other hosts the type now (after the crash of first, or its exit)
        second = await other.host(Sleeper, name=name, journal=memory, lease=LEASE)
        assert second.reminders is not None
        second.reminders.clock = mock_clock.time
        await eventually(lambda: _indexed(second.reminders, "s2"))
        mock_clock.jump(61.0)
        await eventually(fired_count(memory, "s2"))
        assert "s2" in second.activations
        assert second.reminders.woken >= 1


async def _has_reminder(memory: InMemoryJournal, key: str) -> bool:
    return bool(await memory.load_reminders(PersistenceId("sleeper", key)))


async def _no_reminder(memory: InMemoryJournal, key: str) -> bool:
    return not await memory.load_reminders(PersistenceId("sleeper", key))


async def _indexed(reminders: object, key: str) -> bool:
    return key in getattr(reminders, "due", {})


async def _hosted_by(client: Node, name: str, node: Node) -> bool:
    return any(h.node == node.node_id for h in client.entities.hosts.live(name))


# -- across processes: a host paused past its lease ---------------------------------------------


@pytest.mark.timeout(90)
async def test_a_host_paused_in_a_handler_past_its_lease_writes_nothing_when_resumed(
    nats_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    prefix = unique("paused")
    args = ["--url", nats_url, "--prefix", prefix, "--record", str(record), "--lease", "2.0"]
    async with (
        worker(*args, module=PERSISTENT_WORKER) as w1,
        worker(*args, module=PERSISTENT_WORKER) as w2,
        await Node.connect(nats_url, ask_timeout=BOUND) as client,
        await JetStreamJournal.connect(nats_url, prefix=prefix) as journal,
    ):
        ref = client.entity("vault", "v1", Vault)
        assert await ref.ask(Put(amount=5)) == 5
        owner, other = (w1, w2) if await ref.ask(Where()) == w1.name else (w2, w1)
        await ref.tell(Put(amount=1000, wait=1.0))
        await eventually(_recorded(record, "waiting 1000"))
        owner.pause()  # inside the handler, before its persist
        # Its lease expires; another host activates the key, recovers 5, and writes.
        assert await client.entity("vault", "v1", Vault).ask(Where(), timeout=BOUND) == other.name
        assert await client.entity("vault", "v1", Vault).ask(Put(amount=7)) == 12
        owner.resume()  # the handler goes on to persist: refused, nothing written
        await eventually(_recorded(record, "refused "))
        assert await ref.ask(Total()) == 12
        pid = PersistenceId("vault", "v1")
        assert [event.payload async for event in journal.read(pid)] == [b'{"amount":5}', b'{"amount":7}']
    refused = [line for line in record.read_text().splitlines() if line.startswith("refused")]
    assert [line.split()[:3] for line in refused] == [["refused", "EntityFenced", "1000"]]


@pytest.mark.timeout(90)
async def test_a_reminder_fires_on_another_host_after_kill_9_of_its_own(
    nats_url: str, tmp_path: Path
) -> None:
    """Real time (the hosts are other processes): the reminder is due 1 s after it is stored;
    its host is killed at once; it fires on the other host once the key's lease (2 s) expired."""
    record = tmp_path / "record"
    prefix = unique("killed")
    args = ["--url", nats_url, "--prefix", prefix, "--record", str(record), "--lease", "2.0"]
    async with (
        worker(*args, module=PERSISTENT_WORKER) as w1,
        worker(*args, module=PERSISTENT_WORKER) as w2,
        await Node.connect(nats_url, ask_timeout=BOUND) as client,
    ):
        ref = client.entity("vault", "r1", Vault)
        owner, other = (w1, w2) if await ref.ask(Where()) == w1.name else (w2, w1)
        await ref.ask(Remind(amount=3, delay=1.0))
        owner.kill()
        await eventually(_recorded(record, "fired 3"), timeout=40.0)
        assert await ref.ask(Total()) == 3
    fired = [line.split() for line in record.read_text().splitlines() if line.startswith("fired")]
    assert [line[2] for line in fired] == [other.name]


def _recorded(record: Path, text: str) -> Callable[[], Awaitable[bool]]:
    def lines() -> list[str]:
        return record.read_text().splitlines() if record.exists() else []

    async def check() -> bool:
        return any(line.startswith(text) for line in lines())

    return check


async def test_due_entries_are_read_as_hostile_and_wakes_are_bounded_per_scan(node: Node) -> None:
    memory = InMemoryJournal()
    name = unique("sleeper")
    host = await node.host(Sleeper, name=name, journal=memory, lease=LEASE)
    reminders = host.reminders
    assert reminders is not None
    kv = await node._nc.jetstream().key_value(reminders.bucket)  # pyright: ignore[reportPrivateUsage]
    later = repr(time.time() + 3600).encode()
    for key, value in [
        ("bad1", b"nan"),
        ("bad2", b"soon"),
        ("bad3", b"\xff"),
        ("a.b", b"1.0"),
        ("good", later),
    ]:
        await kv.put(key, value)
    await eventually(lambda: _indexed(reminders, "good"))
    assert set(reminders.due) == {"good"}
    await reminders.close()  # no scans of its own from here: the test scans
    reminders.due.update({"a1": 1.0, "a2": 2.0, "a3": 3.0})
    reminders.max_per_scan = 2
    assert await reminders.scan() == 2
    assert await reminders.scan() == 1  # the third; "good" is not due
    assert await reminders.scan() == 0  # each woken once per retry_every
    assert reminders.woken == 3

    async def started() -> bool:
        return host.started == 3

    await eventually(started)
