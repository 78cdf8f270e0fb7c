"""Bounds of entity hosting on a real nats-server: at most ``max_active`` activations per hosted
type on a node (the least recently used idle one makes room; a host whose activations are all
busy refuses), and the size bounds of the buckets the entity code creates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actorio import Actor, Message, dead_letters, handles
from actorio.nats import Node, RemoteError
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
