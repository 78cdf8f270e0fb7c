"""Bounds of entity hosting on a real nats-server: at most ``max_active`` activations per hosted
type on a node (the least recently used idle one makes room; a host whose activations are all
busy refuses), and the size bounds of the buckets the entity code creates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import pytest_asyncio
from pydantic import BaseModel

from actorio import Actor, MailboxFull, Message, dead_letters, handles
from actorio.nats import BucketFull, EntityHost, Node, RemoteError
from actorio.nats._entity_persistence import DUE_MAX_BYTES
from actorio.nats._placement import BUCKET_MAX_BYTES, Lease
from actorio.persistence import DurableStateActor, InMemoryJournal, PersistenceId
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 2.0

STARTED: list[str] = []
STOPPED: list[str] = []


class Add(Message):
    amount: int


class Balance(Message[int]):
    pass


class Park(Message):
    """Told: the handler waits for `GATE` (after setting `PARKED`)."""


# The events of the running test (an event is bound to the loop that first waits on it).
EVENTS: dict[str, asyncio.Event] = {}


class Counter(Actor[Add | Balance | Park]):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.total = 0

    async def mainloop_setup(self) -> None:
        STARTED.append(self.key)

    async def mainloop_teardown(self) -> None:
        STOPPED.append(self.key)

    @handles(Add)
    async def add(self, msg: Add) -> None:
        self.total += msg.amount

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.total

    @handles(Park)
    async def park(self, msg: Park) -> None:
        EVENTS["parked"].set()
        await EVENTS["gate"].wait()


@pytest_asyncio.fixture
async def pair(nats_url: str) -> AsyncIterator[tuple[Node, Node]]:
    host, client = (
        await Node.connect(nats_url, ask_timeout=10.0),
        await Node.connect(nats_url, ask_timeout=10.0),
    )
    try:
        yield host, client
    finally:
        if "gate" in EVENTS:
            EVENTS.pop("gate").set()
        await client.close()
        await host.close()


class Bounded(Counter):
    """A counter whose mailbox holds two messages."""

    mailbox_capacity = 2


async def test_a_full_mailbox_of_one_key_holds_up_no_other_key(pair: tuple[Node, Node]) -> None:
    """One subscription serves every key of a type: a key whose bounded mailbox is full drops
    what comes (a tell is a dead letter ``overflow``, an ask gets `MailboxFull`), instead of
    making the subscription wait for room while the other keys' messages queue behind."""
    parked, gate = EVENTS["parked"], EVENTS["gate"] = asyncio.Event(), asyncio.Event()
    node, client = pair
    await node.host(Bounded, name="bounded", lease=LEASE)
    victim, other = client.entity("bounded", "victim", Bounded), client.entity("bounded", "other", Bounded)
    await victim.tell(Park())
    await asyncio.wait_for(parked.wait(), 10.0)  # in its handler, its mailbox empty
    for amount in range(10):  # two fit, eight are dropped
        await victim.tell(Add(amount=amount))
    with pytest.raises(MailboxFull):
        await victim.ask(Balance(), timeout=10)
    assert await other.ask(Balance(), timeout=10) == 0  # at once: nothing waits for the victim's room

    async def dropped() -> bool:
        return len(dead_letters.of(recipient="bounded/victim", reason="overflow")) == 8

    await wait_until(dropped, 10.0)
    gate.set()
    assert await victim.ask(Balance(), timeout=10) == 0 + 1  # the two that fit were handled


async def test_a_full_host_passivates_its_least_recently_used_idle_activation(
    pair: tuple[Node, Node],
) -> None:
    STARTED.clear()
    STOPPED.clear()
    node, client = pair
    host = await node.host(Counter, name="lru1", lease=LEASE, max_active=2)
    assert host.max_active == 2
    refs = {key: client.entity("lru1", key, Counter) for key in ("k0", "k1", "k2", "k3")}
    await refs["k0"].tell(Add(amount=1))
    assert await refs["k0"].ask(Balance()) == 1
    assert await refs["k1"].ask(Balance()) == 0
    assert await refs["k0"].ask(Balance()) == 1  # k0 used last: k1 is the least recently used
    assert host.evicted == 0

    assert await refs["k2"].ask(Balance()) == 0  # full: k1 makes room
    assert STOPPED == ["k1"]  # its teardown ran
    assert sorted(host.activations) == ["k0", "k2"]
    assert host.evicted == 1
    assert await host.placements.lookup("k1") is None  # its lease was released
    owner = await host.placements.lookup("k0")
    assert owner is not None
    assert owner.node == node.node_id

    assert await refs["k0"].ask(Balance()) == 1  # k0 kept its state: it was not passivated
    assert await refs["k3"].ask(Balance()) == 0  # now k2 is the least recently used
    assert STOPPED == ["k1", "k2"]
    assert await refs["k1"].ask(Balance()) == 0  # activated again (k0 makes room), from its factory
    assert STOPPED == ["k1", "k2", "k0"]
    assert len(host.activations) == 2
    assert STARTED == ["k0", "k1", "k2", "k3", "k1"]


async def test_a_host_whose_activations_are_all_busy_refuses_a_new_key(pair: tuple[Node, Node]) -> None:
    STOPPED.clear()
    parked, gate = EVENTS["parked"], EVENTS["gate"] = asyncio.Event(), asyncio.Event()
    node, client = pair
    host = await node.host(Counter, name="lru2", lease=LEASE, max_active=1)
    busy, other = client.entity("lru2", "busy", Counter), client.entity("lru2", "other", Counter)
    await busy.tell(Park())
    await asyncio.wait_for(parked.wait(), 10.0)  # in its handler: not idle

    with pytest.raises(RemoteError) as refused:
        await other.ask(Balance())
    assert refused.value.type_name == "HostFull"
    assert "max_active=1" in refused.value.remote_message
    await other.tell(Add(amount=5))

    async def dead_lettered() -> bool:
        return bool(dead_letters.of(recipient="lru2/other", reason="overflow"))

    await wait_until(dead_lettered, 10.0)
    assert host.evicted == 0
    assert host.refused == 2
    assert list(host.activations) == ["busy"]
    assert STOPPED == []

    gate.set()  # the busy one finishes its handler, and is idle: the next new key takes its place
    assert await other.ask(Balance()) == 0  # the refused tell was not handled
    assert STOPPED == ["busy"]
    assert host.evicted == 1


async def test_max_active_is_checked(pair: tuple[Node, Node]) -> None:
    node, _ = pair
    wrongs: list[Any] = [0, -1, 1.5, True]
    for wrong in wrongs:
        with pytest.raises(ValueError, match="max_active"):
            await node.host(Counter, name="lru3", lease=LEASE, max_active=wrong)
    unbounded = await node.host(Counter, name="lru3", lease=LEASE, max_active=None)
    assert unbounded.max_active is None
    default = await node.host(Counter, name="lru4", lease=LEASE)
    assert default.max_active == 100_000


# -- the size bounds of the buckets --------------------------------------------------------------


class Count(BaseModel):
    value: int = 0


class Arm(Message[None]):
    """Asked: store a durable reminder an hour from now."""


class Ring(Message):
    pass


class Rings(Message[int]):
    pass


class Alarm(DurableStateActor[Arm | Ring | Rings, Count]):
    entity_type = "alarm"

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        await self.remind("later", Ring(), 3600.0)

    @handles(Ring)
    async def ring(self, msg: Ring) -> None:
        self.state = Count(value=self.state.value + 1)

    @handles(Rings)
    async def rings(self, msg: Rings) -> int:
        return self.state.value


async def max_bytes(nats_url: str, bucket: str) -> int:
    """The ``max_bytes`` the server has for the key-value bucket ``bucket``."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(f"KV_{bucket}")
        assert info.config.max_bytes is not None
        return info.config.max_bytes
    finally:
        await nc.close()


async def test_the_entity_buckets_are_bounded_by_default(pair: tuple[Node, Node], nats_url: str) -> None:
    node, _ = pair
    host = await node.host(Alarm, name="bounds1", lease=LEASE, journal=InMemoryJournal())
    assert host.reminders is not None
    assert await max_bytes(nats_url, host.placements.name) == BUCKET_MAX_BYTES == 1024**3
    assert await max_bytes(nats_url, host.reminders.bucket) == DUE_MAX_BYTES == 256 * 1024**2


async def test_the_bucket_bounds_are_settings(pair: tuple[Node, Node], nats_url: str) -> None:
    node, _ = pair
    node.entities.bucket_max_bytes = 65536
    node.entities.due_max_bytes = 32768
    host = await node.host(Alarm, name="bounds2", lease=LEASE, journal=InMemoryJournal())
    assert host.reminders is not None
    assert await max_bytes(nats_url, host.placements.name) == 65536
    assert await max_bytes(nats_url, host.reminders.bucket) == 32768
    node.entities.bucket_max_bytes = node.entities.due_max_bytes = None
    unbounded = await node.host(Alarm, name="bounds3", lease=LEASE, journal=InMemoryJournal())
    assert unbounded.reminders is not None
    assert await max_bytes(nats_url, unbounded.placements.name) == -1
    assert await max_bytes(nats_url, unbounded.reminders.bucket) == -1
    node.entities.due_max_bytes = 0
    with pytest.raises(ValueError, match=r"entities\.due_max_bytes"):
        await node.host(Alarm, name="bounds4", lease=LEASE, journal=InMemoryJournal())


def lease_of(host: EntityHost, key: str) -> Lease:
    lease = host.activations[key].lease
    assert lease is not None
    return lease


async def test_a_full_placement_bucket_refuses_new_keys_and_keeps_the_active_ones(
    pair: tuple[Node, Node], nats_url: str
) -> None:
    node, client = pair
    node.entities.bucket_max_bytes = 1024
    # A long lease: renewals come when the test says (host.check), not on their own.
    host = await node.host(Counter, name="full1", lease=60.0)
    nc = await nats.connect(nats_url)
    try:  # revisions of two digits and more: a renewal then writes more digits than a claim
        kv = await nc.jetstream().key_value(host.placements.name)
        for _ in range(20):
            await kv.put("warm", b"-")
        await kv.purge("warm")
    finally:
        await nc.close()
    active: list[str] = []
    refused: RemoteError | None = None
    for i in range(100):
        try:
            await client.entity("full1", f"k{i}", Counter).ask(Balance())
        except RemoteError as error:
            refused = error
            break
        active.append(f"k{i}")
    assert refused is not None, "1,024 bytes held 100 placements"
    assert refused.type_name == "BucketFull"
    assert host.placements.name in refused.remote_message
    assert active  # some fitted
    assert sorted(host.activations) == sorted(active)
    first = {key: lease_of(host, key) for key in active}
    host.check(max(lease.renew_at for lease in first.values()) + 0.001)  # renew them all now

    async def renewed() -> bool:  # a full bucket still takes renewals: they store no more bytes
        return all(lease_of(host, key).revision > first[key].revision for key in active)

    await wait_until(renewed, 10.0)
    for key in active:  # the active keys still answer, on their first claims
        assert await client.entity("full1", key, Counter).ask(Balance()) == 0
        assert lease_of(host, key).claim == first[key].claim
    await client.entity("full1", "new", Counter).tell(Add(amount=1))

    async def dead_lettered() -> bool:
        return bool(dead_letters.of(recipient="full1/new", reason="overflow"))

    await wait_until(dead_lettered, 10.0)
    letter = dead_letters.of(recipient="full1/new", reason="overflow")[0]
    assert isinstance(letter.error, BucketFull)


async def test_a_full_index_of_due_reminders_refuses_a_reminder(pair: tuple[Node, Node]) -> None:
    node, client = pair
    node.entities.due_max_bytes = 1024
    memory = InMemoryJournal()
    host = await node.host(Alarm, name="full2", lease=LEASE, journal=memory)
    assert host.reminders is not None
    armed: list[str] = []
    refused: RemoteError | None = None
    refused_key = ""
    for i in range(100):
        try:
            await client.entity("full2", f"a{i}", Alarm).ask(Arm())
        except RemoteError as error:
            refused = error
            refused_key = f"a{i}"
            break
        armed.append(f"a{i}")
    assert refused is not None, "1,024 bytes held 100 due entries"
    assert refused.type_name == "BucketFull"
    assert host.reminders.bucket in refused.remote_message
    assert armed
    for key in armed:
        assert await memory.load_reminders(PersistenceId("alarm", key))
    assert not await memory.load_reminders(PersistenceId("alarm", refused_key))  # nothing stored


async def test_a_durable_key_refused_by_a_full_host_keeps_its_messages(pair: tuple[Node, Node]) -> None:
    STOPPED.clear()
    parked, gate = EVENTS["parked"], EVENTS["gate"] = asyncio.Event(), asyncio.Event()
    node, client = pair
    host = await node.host(Counter, name="lru5", lease=LEASE, max_active=1, durable=True)
    busy, other = client.entity("lru5", "busy", Counter), client.entity("lru5", "other", Counter)
    await busy.tell(Park())
    await asyncio.wait_for(parked.wait(), 10.0)
    await other.tell(Add(amount=5))  # stored (acknowledged); its wake is refused: the host is full
    await other.tell(Add(amount=2))

    async def refused() -> bool:
        return host.refused >= 1

    await wait_until(refused, 10.0)
    gate.set()
    # Not lost: still stored, handled once the key finds room (woken by this ask or a scan).
    assert await other.ask(Balance()) == 7
    assert STOPPED == ["busy"]
    assert host.evicted == 1
    assert not dead_letters.of(reason="overflow")  # a refused wake is no lost message


async def test_a_persistent_entity_passivated_for_room_recovers_its_state(pair: tuple[Node, Node]) -> None:
    node, client = pair
    memory = InMemoryJournal()
    host = await node.host(Alarm, name="lru6", lease=LEASE, journal=memory, max_active=1)
    first, second = client.entity("lru6", "p1", Alarm), client.entity("lru6", "p2", Alarm)
    await first.tell(Ring())
    await first.tell(Ring())
    assert await first.ask(Rings()) == 2
    assert await second.ask(Rings()) == 0  # p1 passivated to make room
    assert list(host.activations) == ["p2"]
    assert await first.ask(Rings()) == 2  # activated again (p2 makes room), recovered from the journal
    assert host.evicted == 2
