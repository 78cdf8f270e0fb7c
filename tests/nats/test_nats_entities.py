"""Entities on a real nats-server (several nodes in one process): activation on the first message,
exactly one activation per key, the location cache, idle passivation and re-activation, moves,
fencing, key validation and hostile input."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client

from actorio import Actor, Message, handles
from actorio.nats import ActorNotFound, EntityRef, Host, Node, rendezvous
from actorio.nats._codec import encode_message
from actorio.nats._entities import Entities
from actorio.nats._entity_host import ERROR_TYPE
from actorio.nats._entity_host import LEASE as LEASE_HEADER
from actorio.nats._placement import Owner, Placement
from tests.nats_support.link import SlowLink
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 2.0  # real seconds: the bucket's TTL is the server's, in real time

# Each activation, recorded by (entity type name, key): (node id, started, stopped). Tests in one
# process share it; each test uses a type name of its own.
EVENTS: list[tuple[str, str, str]] = []
STAMPS: dict[tuple[str, str, str], float] = {}  # when each (kind, key, node) last happened


class Add(Message):
    amount: int


class Balance(Message[int]):
    pass


class Where(Message[str]):
    pass


class Boom(Message[int]):
    pass


class Other(Message):
    pass


class Account(Actor[Add | Balance | Where | Boom]):
    """An account: its balance in memory; records its start and teardown."""

    node_id = ""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.balance = 0

    async def mainloop_setup(self) -> None:
        EVENTS.append(("start", self.key, type(self).node_id))
        STAMPS[("start", self.key, type(self).node_id)] = time.monotonic()

    async def mainloop_teardown(self) -> None:
        EVENTS.append(("stop", self.key, type(self).node_id))
        STAMPS[("stop", self.key, type(self).node_id)] = time.monotonic()

    @handles(Add)
    async def add(self, msg: Add) -> None:
        self.balance += msg.amount

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.balance

    @handles(Where)
    async def where(self, msg: Where) -> str:
        return type(self).node_id

    @handles(Boom)
    async def boom(self, msg: Boom) -> int:
        raise RuntimeError("boom")


def account_class(node: Node) -> type[Account]:
    """An `Account` class that knows its node (one per node, so two nodes in one process differ)."""
    return type("Account", (Account,), {"node_id": node.node_id})


@pytest_asyncio.fixture
async def nodes(nats_url: str) -> AsyncIterator[list[Node]]:
    made = [await Node.connect(nats_url, ask_timeout=10.0) for _ in range(3)]
    try:
        yield made
    finally:
        for node in made:
            await node.close()


def live(events: list[tuple[str, str, str]]) -> dict[str, set[str]]:
    """The nodes each key is active on, replaying the recorded starts and stops."""
    active: dict[str, set[str]] = {}
    for kind, key, node in events:
        nodes = active.setdefault(key, set())
        if kind == "start":
            assert not nodes, f"{key} started on {node} while active on {nodes}"
            nodes.add(node)
        else:
            nodes.discard(node)
    return active


async def test_the_first_message_activates_the_entity_on_one_node(nodes: list[Node]) -> None:
    EVENTS.clear()
    a, b, client = nodes
    host_a = await a.host(account_class(a), name="acct1", lease=LEASE)
    host_b = await b.host(account_class(b), name="acct1", lease=LEASE)
    refs = [client.entity("acct1", f"k{i}", Account) for i in range(20)]
    await asyncio.gather(*(ref.tell(Add(amount=i)) for i, ref in enumerate(refs)))
    balances = await asyncio.gather(*(ref.ask(Balance()) for ref in refs))
    assert balances == list(range(20))
    # Each key lives on one node, and every node (even one that hosts nothing) reaches it.
    where = {ref.key: await ref.ask(Where()) for ref in refs}
    for key, node_id in where.items():
        assert await a.entity("acct1", key, Account).ask(Where()) == node_id
        assert await b.entity("acct1", key, Account).ask(Where()) == node_id
    assert host_a.started + host_b.started == 20
    assert host_a.started > 0  # the default placement spreads them
    assert host_b.started > 0
    live(EVENTS)


async def test_concurrent_first_messages_from_many_nodes_make_one_activation(nodes: list[Node]) -> None:
    EVENTS.clear()
    hosts = [await n.host(account_class(n), name="acct2", lease=LEASE, idle_timeout=60) for n in nodes]
    keys = [f"race{i}" for i in range(10)]
    ids = sorted(n.node_id for n in nodes)

    def choose(node_id: str) -> Placement:
        def placement(key: str, live: Sequence[Host]) -> Host:
            return next((h for h in live if h.node == node_id), live[0])

        return placement

    for offset, n in enumerate(nodes):
        # Each node chooses a different host for a free key: their claims race.
        await n.entities.wait_for_hosts("acct2", 5.0)
        n.entities.placement = choose(ids[offset])

    async def burst(node: Node) -> None:
        for key in keys:
            await node.entity("acct2", key, Account).tell(Add(amount=1))

    await asyncio.gather(*(burst(n) for n in nodes))
    for key in keys:
        assert await nodes[2].entity("acct2", key, Account).ask(Balance()) == 3
    assert sum(host.started for host in hosts) == len(keys)
    live(EVENTS)


async def test_typed_reference_by_class(nodes: list[Node]) -> None:
    a, _, client = nodes
    await a.host(Account, lease=LEASE)
    ref = client.entity(Account, "alice")
    assert isinstance(ref, EntityRef)
    assert ref.identifier == "Account/alice"
    await ref.tell(Add(amount=5))
    assert await ref.ask(Balance()) == 5
    assert ref == client.entity(Account, "alice")
    with pytest.raises(TypeError):
        await ref.tell(Other())  # type: ignore[actorio-protocol]  # pyright: ignore[reportArgumentType]


async def test_keys_are_checked_at_the_reference(node: Node) -> None:
    for bad in ["", "a.b", "a b", "*", ">", "x" * 129, "é", "a\x00", "$SYS"]:
        with pytest.raises(ValueError, match="invalid entity key"):
            node.entity(Account, bad)
    with pytest.raises(TypeError):
        node.entity(Account, 42)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    with pytest.raises(ValueError, match="invalid entity type name"):
        node.entity("a.b", "k", Account)
    assert node.entity(Account, "x" * 128).key == "x" * 128
    assert node.entity(Account, "YWxpY2U=").key == "YWxpY2U="


async def test_a_type_nobody_hosts_is_not_found(node: Node) -> None:
    ref = node.entity("nobody", "k", Account)
    with pytest.raises(ActorNotFound, match="no node hosts the entity type 'nobody'"):
        await ref.ask(Balance(), timeout=0.5)


async def test_an_ask_waits_for_earlier_tell_nowaits_within_its_own_timeout(nats_url: str) -> None:
    """An ask goes after what ``tell_nowait`` queued before it for its type; a queued tell to a
    type nobody hosts waits up to the node's ``ask_timeout`` for a host: the ask gives up at its
    own. An ask to another type does not wait for them."""
    async with await Node.connect(nats_url) as hosting:
        client = await Node.connect(nats_url, ask_timeout=30.0)
        await hosting.host(account_class(hosting), name="acct-queue", lease=LEASE)
        ref = client.entity("acct-queue", "k", Account)
        assert await ref.ask(Balance(), timeout=10) == 0
        for key in ("k1", "k2"):  # the first is being sent (waiting for a host), the second queued
            client.entity("ghost-queue", key, Account).tell_nowait(Add(amount=1))
        queued = "earlier tell_nowait calls were still being sent"
        try:
            assert await asyncio.wait_for(ref.ask(Balance(), timeout=10), 10) == 0
            ghost = client.entity("ghost-queue", "k1", Account)
            with pytest.raises(asyncio.TimeoutError, match=queued):  # not the bound's, at 10 s
                await asyncio.wait_for(ghost.ask(Balance(), timeout=0.5), 10)
        finally:
            await client.close(timeout=0.5)  # the queued tells would wait for a host


async def test_callers_sharing_a_keys_lookup_each_wait_within_their_own_timeout(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asks of one key share one lookup of its placement: the first asker's timeout (and its
    wait for a host) must not become the others'."""
    looking_up = asyncio.Event()
    resolve = Entities._resolve

    async def noted(self: Entities, ref: EntityRef[Any], timeout: float) -> Any:
        looking_up.set()
        return await resolve(self, ref, timeout)

    monkeypatch.setattr(Entities, "_resolve", noted)
    async with await Node.connect(nats_url) as hosting:
        await hosting.host(account_class(hosting), name="acct-gone", lease=LEASE)
    async with await Node.connect(nats_url, ask_timeout=30.0) as client:  # its bucket, no host
        ref = client.entity("acct-gone", "k", Account)
        patient = asyncio.ensure_future(ref.ask(Balance(), timeout=20))
        try:
            await asyncio.wait_for(looking_up.wait(), 10)  # its lookup, shared by what follows
            with pytest.raises(asyncio.TimeoutError, match="its placement was not found"):
                await asyncio.wait_for(ref.ask(Balance(), timeout=0.5), 10)
        finally:
            patient.cancel()
            await asyncio.gather(patient, return_exceptions=True)


async def test_idle_entities_are_passivated_and_reactivated(nodes: list[Node]) -> None:
    EVENTS.clear()
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct3", lease=LEASE, idle_timeout=0.3)
    ref = client.entity("acct3", "sleepy", Account)
    await ref.tell(Add(amount=7))
    assert await ref.ask(Balance()) == 7

    async def passivated() -> bool:
        return "sleepy" not in host.activations

    await wait_until(passivated, 10.0)
    assert ("stop", "sleepy", a.node_id) in EVENTS  # its teardown ran
    # Its placement was released: the next message activates it again, state lost (in memory).
    assert await host.placements.lookup("sleepy") is None
    assert await ref.ask(Balance()) == 0
    assert host.started == 2
    live(EVENTS)


async def test_an_ask_routed_to_an_earlier_activation_is_answered_moved_not_handled(
    nodes: list[Node], raw: Client
) -> None:
    """An ask that arrives with the claim of an activation that has stopped (held while the key
    passivated, then the key activated again): its asker sends it again once the entry names
    the new claim, so the new activation must not handle this copy too. It is answered
    `EntityMoved` (the asker routes it again); a tell with that claim is still delivered."""
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct-old", lease=LEASE, idle_timeout=0.3)
    ref = client.entity("acct-old", "k", Account)
    await ref.tell(Add(amount=1))
    assert await ref.ask(Balance()) == 1
    first = host.holder("k")
    assert first is not None
    assert first.lease is not None
    earlier = first.lease.claim

    async def passivated() -> bool:
        return "k" not in host.activations

    await wait_until(passivated, 10.0)
    assert await ref.ask(Balance()) == 0  # active again, under a newer claim
    again = host.holder("k")
    assert again is not None
    assert again.lease is not None
    assert again.lease.claim > earlier
    subject = host.subject.replace("*", "k")
    body = encode_message(Add(amount=5))
    reply = await raw.request(subject, body, timeout=10, headers={LEASE_HEADER: str(earlier)})
    assert (reply.headers or {}).get(ERROR_TYPE) == "EntityMoved"
    await raw.publish(subject, body, headers={LEASE_HEADER: str(earlier)})  # a tell: delivered
    current = {LEASE_HEADER: str(again.lease.claim)}  # after the tell: one connection, in order
    balance = await raw.request(subject, encode_message(Balance()), timeout=10, headers=current)
    assert json.loads(balance.data) == 5  # the ask's Add was not handled, the tell's was


async def test_a_failing_entity_is_restarted_and_others_go_on(nodes: list[Node]) -> None:
    a, _, client = nodes
    await a.host(account_class(a), name="acct4", lease=LEASE)
    bad, good = client.entity("acct4", "bad", Account), client.entity("acct4", "good", Account)
    await good.tell(Add(amount=1))
    with pytest.raises(Exception, match="boom"):
        await bad.ask(Boom())
    assert await bad.ask(Balance()) == 0
    assert await good.ask(Balance()) == 1


async def test_a_closed_host_releases_its_keys_and_they_move(nodes: list[Node]) -> None:
    EVENTS.clear()
    a, b, client = nodes
    await a.host(account_class(a), name="acct5", lease=LEASE)
    ref = client.entity("acct5", "mover", Account)
    assert await ref.ask(Where()) == a.node_id
    await b.host(account_class(b), name="acct5", lease=LEASE)
    await a.close()
    assert ("stop", "mover", a.node_id) in EVENTS
    assert await ref.ask(Where(), timeout=10) == b.node_id
    live(EVENTS)


async def test_a_tell_after_its_key_s_host_left_reaches_the_next_host(
    nodes: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that leaves announces it. A sender's route to it (cached for a minute) is kept a
    second at most once it is heard leaving: a tell is then routed anew. (It was published to
    the departed node's subject, where nobody listens: lost, as was every tell to the key for up
    to a minute, and a durable type's wakes of the shards that node held, so that their stored
    messages waited.)"""
    EVENTS.clear()
    a, b, client = nodes
    loop, later = asyncio.get_running_loop(), [0.0]
    monkeypatch.setattr(client.entities, "_clock", lambda: loop.time() + later[0])
    monkeypatch.setattr(client.entities.hosts, "_clock", lambda: loop.time() + later[0])
    await a.host(account_class(a), name="acct20", lease=LEASE)
    ref = client.entity("acct20", "left", Account)
    assert await ref.ask(Where()) == a.node_id  # the key, free, placed on a: a route for a second
    later[0] = 1.0
    assert await ref.ask(Where()) == a.node_id  # read again: a holds it, a route for a minute
    route = client.entities._routes[("acct20", "left")]  # pyright: ignore[reportPrivateUsage]
    assert (route.node, route.expires - route.made) == (a.node_id, 60.0)
    await b.host(account_class(b), name="acct20", lease=LEASE)
    await a.close()

    async def heard_leaving() -> bool:
        return [host.node for host in client.entities.hosts.live("acct20")] == [b.node_id]

    await wait_until(heard_leaving, 10.0)
    # Anyone may announce it again: it did not host the type without a break since the read. (A
    # free key may then be placed on it, and its tells lost, as docs/entities.md says: here b is
    # chosen, so that what is tested is the route read before a left.)
    client.entities.hosts.heard(json.dumps({"node": a.node_id, "every": 60, "types": {"acct20": 0}}).encode())
    client.entities.placement = lambda key, hosts: next(h for h in hosts if h.node == b.node_id)
    later[0] = 2.0  # the route: a second old
    await ref.tell(Add(amount=3))
    assert await ref.ask(Balance(), timeout=10) == 3
    assert await ref.ask(Where()) == b.node_id
    live(EVENTS)


async def test_forged_leaves_cost_a_sender_at_most_one_read_of_the_bucket_per_key_a_second(
    nodes: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who may publish announcements can say that a live host left, again and again. A
    sender then reads the key's entry again: the bucket still names the host, and the route it
    read is kept for a second, however many leaves come meanwhile. (Each message read the
    bucket: forged leaves 100 times a second made 1,947 reads for 2,000 tells.)"""
    a, _, client = nodes
    await a.host(account_class(a), name="acct21", lease=LEASE)
    ref = client.entity("acct21", "kept", Account)
    assert await ref.ask(Where()) == a.node_id
    entities = client.entities
    now = [entities.hosts._clock()]  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setattr(entities, "_clock", lambda: now[0])
    monkeypatch.setattr(entities.hosts, "_clock", lambda: now[0])
    placements = await entities._placements("acct21", 1.0)  # pyright: ignore[reportPrivateUsage]
    reads = 0
    lookup = placements.lookup

    async def counted(key: str) -> Owner | None:
        nonlocal reads
        reads += 1
        return await lookup(key)

    monkeypatch.setattr(placements, "lookup", counted)
    now[0] += 1.0  # the route read above is a second old
    join = json.dumps({"node": a.node_id, "every": 1.0, "types": {"acct21": 0}}).encode()
    leave = json.dumps({"node": a.node_id, "every": 1.0, "types": {}}).encode()
    for _ in range(50):  # forged: it hosts the type, it left, ... (a real announcement is a join)
        entities.hosts.heard(join)
        entities.hosts.heard(leave)
        now[0] += 0.001
        await ref.tell(Add(amount=1))
    assert reads == 1, reads
    now[0] += 1.0
    entities.hosts.heard(join)
    entities.hosts.heard(leave)
    await ref.tell(Add(amount=1))
    assert reads == 2
    assert await ref.ask(Balance()) == 51


async def test_a_node_that_lost_its_lease_stops_acting(
    nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    """Fencing: the bucket entry is taken away behind the holder's back (as after a long pause):
    its renewal fails, and it stops before handling anything more, saying so in the log."""
    caplog.set_level(logging.WARNING, logger="actorio.nats")
    EVENTS.clear()
    a, b, client = nodes
    host_a = await a.host(account_class(a), name="acct6", lease=LEASE)
    ref = client.entity("acct6", "fenced", Account)
    assert await ref.ask(Where()) == a.node_id
    activation = host_a.activations["fenced"]
    assert activation.lease is not None
    # Someone else's claim: the entry is replaced, so the holder's compare-and-set fails.
    await host_a.placements._kv.delete("fenced")  # pyright: ignore[reportPrivateUsage]

    async def stopped() -> bool:
        return "fenced" not in host_a.activations

    await wait_until(stopped, 10.0)
    assert ("stop", "fenced", a.node_id) in EVENTS
    assert any("acct6/fenced: the lease was lost" in r.getMessage() for r in caplog.records)
    await b.host(account_class(b), name="acct6", lease=LEASE)
    # A message routed with a newer claim than the holder's is never handled by it.
    assert await ref.ask(Balance(), timeout=10) == 0
    live(EVENTS)


async def test_rendezvous_placement_is_stable(nodes: list[Node]) -> None:
    a, b, client = nodes
    await a.host(account_class(a), name="acct7", lease=LEASE)
    await b.host(account_class(b), name="acct7", lease=LEASE)
    client.entities.placement = rendezvous
    await client.entities.wait_for_hosts("acct7", 5.0)

    async def both() -> bool:
        return len(client.entities.hosts.live("acct7")) == 2

    await wait_until(both, 10.0)
    hosts = client.entities.hosts.live("acct7")
    for i in range(10):
        expected = rendezvous(f"r{i}", hosts).node
        assert await client.entity("acct7", f"r{i}", Account).ask(Where()) == expected


async def test_hostile_messages_never_reach_an_entity(nodes: list[Node]) -> None:
    from actorio import dead_letters

    a, _, client = nodes
    host = await a.host(account_class(a), name="acct8", lease=LEASE)
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    base = f"{client.prefix}.entity.acct8.{a.node_id}"
    await nc.publish(f"{base}.k1", b'{"type":"Add","amount":1}')  # no lease header
    await nc.publish(f"{base}.k1", b'{"type":"Add","amount":1}', headers={"Actorio-Lease": "-1"})
    await nc.publish(f"{base}.k1", b'{"type":"Add","amount":1}', headers={"Actorio-Lease": "9" * 40})
    await nc.publish(f"{base}.a=b=c", b"not json", headers={"Actorio-Lease": "0"})
    await nc.publish(f"{base}.{'x' * 200}", b"{}", headers={"Actorio-Lease": "0"})
    reply = await nc.request(f"{base}.k2", b"{}", headers={"Actorio-Lease": "nope"}, timeout=5)
    assert (reply.headers or {}).get("Actorio-Status") == "error"

    async def recorded() -> bool:
        return len(dead_letters.of(reason="invalid")) >= 5

    await wait_until(recorded, 10.0)
    assert "k1" not in host.activations
    ref = client.entity("acct8", "k1", Account)
    assert await ref.ask(Balance()) == 0


async def test_tell_nowait_and_tell_keep_their_order(nodes: list[Node]) -> None:
    a, _, client = nodes
    await a.host(account_class(a), name="acct9", lease=LEASE)
    ref = client.entity("acct9", "ordered", Account)
    for i in range(100):
        ref.tell_nowait(Add(amount=i))
    await ref.tell(Add(amount=1000))
    assert await ref.ask(Balance()) == sum(range(100)) + 1000


async def test_a_host_cut_off_from_the_server_stops_before_another_takes_over(
    nats_url: str, nodes: list[Node]
) -> None:
    """What the cut-off node sends waits in a relay (its renewals, its replies) while it still
    receives: it cannot renew, reaches its fence and stops; only then can the key's entry
    expire and another host activate it."""
    EVENTS.clear()
    b, client, _ = nodes
    port = int(nats_url.rsplit(":", 1)[1])
    async with SlowLink(port).running() as link, await Node.connect(link.url, ask_timeout=10.0) as cut:
        host_cut = await cut.host(account_class(cut), name="acct10", lease=LEASE)
        ref = client.entity("acct10", "island", Account)
        assert await ref.ask(Where()) == cut.node_id
        await b.host(account_class(b), name="acct10", lease=LEASE)
        link.hold()

        async def stopped() -> bool:
            return "island" not in host_cut.activations

        await wait_until(stopped, LEASE + 5.0)
        # The client's cached route still names the cut-off node: its ask reaches it, the reply
        # cannot come back, and the ask goes to the new owner once the entry has changed.
        assert await ref.ask(Where(), timeout=LEASE + 8.0) == b.node_id
        link.release()
    assert STAMPS[("stop", "island", cut.node_id)] < STAMPS[("start", "island", b.node_id)]
    live(EVENTS)


async def test_an_entry_s_remaining_time_is_read_for_its_own_claim_only(nodes: list[Node]) -> None:
    a, client, _ = nodes
    host = await a.host(account_class(a), name="acct13", lease=LEASE)
    ref = client.entity("acct13", "timed", Account)
    assert await ref.ask(Where()) == a.node_id
    lease = host.activations["timed"].lease
    assert lease is not None
    left = await host.placements.remaining("timed", lease.claim)
    assert left is not None
    assert 0 < left <= LEASE
    assert await host.placements.remaining("timed", lease.claim + 1) is None
    assert await host.placements.remaining("nobody", 1) is None
    await host.placements._kv.delete("timed")  # pyright: ignore[reportPrivateUsage]
    assert await host.placements.remaining("timed", lease.claim) is None


async def test_an_ask_to_a_dead_host_s_key_waits_for_its_entry_to_expire_without_polling(
    nats_url: str, nodes: list[Node]
) -> None:
    """The key's node died holding its lease: the asker reads the entry's remaining time and
    waits for its expiry, rather than reading the bucket again every half second (thousands of
    a dead node's keys would each poll it)."""
    EVENTS.clear()
    b, client, _ = nodes
    lease = 4.0
    port = int(nats_url.rsplit(":", 1)[1])
    async with SlowLink(port).running() as link, await Node.connect(link.url, ask_timeout=10.0) as dead:
        await dead.host(account_class(dead), name="acct14", lease=lease)
        ref = client.entity("acct14", "orphan", Account)
        assert await ref.ask(Where()) == dead.node_id
        await b.host(account_class(b), name="acct14", lease=lease)
        placements = await client._entities._placements("acct14", 1.0)  # type: ignore[union-attr]  # pyright: ignore[reportPrivateUsage, reportOptionalMemberAccess]
        reads = 0
        lookup, remaining = placements.lookup, placements.remaining

        async def counted_lookup(key: str) -> Owner | None:
            nonlocal reads
            reads += 1
            return await lookup(key)

        async def counted_remaining(key: str, claim: int) -> float | None:
            nonlocal reads
            reads += 1
            return await remaining(key, claim)

        placements.lookup = counted_lookup  # type: ignore[method-assign]
        placements.remaining = counted_remaining  # type: ignore[method-assign]
        link.sever()
        assert await ref.ask(Where(), timeout=lease + 8.0) == b.node_id
    # Read every half second, the entry was read 21 times here; now: the route, the remaining
    # time, and a few reads while the server's expiry of the entry lags behind its TTL (7 to 8
    # here, idle or beside two CPU burners).
    assert reads <= 12, reads
    live(EVENTS)


async def test_a_forged_newer_lease_claim_does_not_passivate_the_entity(nodes: list[Node]) -> None:
    """A message routed with a claim newer than the activation's (a forged ``Actorio-Lease``, or
    Unicode digits that ``int`` refuses) is not handled and does not stop the entity: the bucket,
    not a header, says who holds the key."""
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct12", lease=LEASE)
    ref = client.entity("acct12", "kept", Account)
    await ref.tell(Add(amount=5))
    assert await ref.ask(Balance()) == 5
    activation = host.activations["kept"]
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    subject = f"{client.prefix}.entity.acct12.{a.node_id}.kept"
    for lease in ("9" * 18, "\u00b2", "\u0663"):  # a huge claim; superscript two; Arabic-Indic three
        await nc.publish(subject, b'{"type":"Add","amount":1000}', headers={"Actorio-Lease": lease})
        reply = await nc.request(subject, b'{"type":"Balance"}', headers={"Actorio-Lease": lease}, timeout=5)
        assert (reply.headers or {}).get("Actorio-Status") == "error"
    assert await ref.ask(Balance()) == 5  # the same activation, its state kept, no forged Add handled
    assert host.activations["kept"] is activation
    from actorio import dead_letters

    forged = [letter for letter in dead_letters.of("acct12/kept") if letter.reason == "stopped"]
    assert forged  # the forged tells: no other host to route them to, and said so
    assert all("no other live host" in str(letter.error) for letter in forged)


async def test_a_flood_of_forged_claims_reads_the_bucket_once_a_second_per_key(nodes: list[Node]) -> None:
    """A tell with a newer claim than the activation's makes the host read the bucket's entry
    (to renew the lease if it moved, and to forward the tell): a flood of them reads it once a
    second per key, not once each."""
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct40", lease=LEASE)
    ref = client.entity("acct40", "target", Account)
    assert await ref.ask(Balance()) == 0
    reads = 0
    lookup_entry = host.placements.lookup_entry

    async def counted(key: str) -> tuple[Owner | None, int] | None:
        nonlocal reads
        reads += 1
        return await lookup_entry(key)

    host.placements.lookup_entry = counted  # type: ignore[method-assign]
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    subject = f"{client.prefix}.entity.acct40.{a.node_id}.target"
    from actorio import dead_letters

    activation = host.activations["target"]
    for sent in range(1, 31):  # one at a time: each after the read the one before made
        await nc.publish(subject, b'{"type":"Add","data":{"amount":1}}', headers={"Actorio-Lease": "9" * 18})

        async def routed() -> bool:  # nowhere else to go: a dead letter, and no read under way
            stopped = [d for d in dead_letters.of("acct40/target") if d.reason == "stopped"]
            return len(stopped) >= sent and activation.renewal is None  # noqa: B023

        await wait_until(routed, 10)
    # A read a second at most for the renewal, and one for the forwarding (31 before: one a tell).
    assert reads <= 10, reads
    assert await ref.ask(Balance()) == 0  # none handled, the entity still there


async def test_forwarding_tells_holds_up_no_other_key(nodes: list[Node]) -> None:
    """Tells a host forwards (here with a forged newer claim) wait for the bucket's entry in a
    queue of their own: the type's one subscription goes on delivering the other keys' messages,
    even while that read does not come back (it held them all before)."""
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct41", lease=LEASE)
    target, other = client.entity("acct41", "target", Account), client.entity("acct41", "other", Account)
    assert await target.ask(Balance()) == 0
    assert await other.ask(Balance()) == 0
    stuck = asyncio.Event()
    lookup_entry = host.placements.lookup_entry

    async def never_for_target(key: str) -> tuple[Owner | None, int] | None:
        if key == "target":
            await stuck.wait()
        return await lookup_entry(key)

    host.placements.lookup_entry = never_for_target  # type: ignore[method-assign]
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    subject = f"{client.prefix}.entity.acct41.{a.node_id}.target"
    try:
        for _ in range(50):
            await nc.publish(
                subject, b'{"type":"Add","data":{"amount":1}}', headers={"Actorio-Lease": "9" * 18}
            )
        await nc.flush()
        await other.tell(Add(amount=2))
        assert await other.ask(Balance(), timeout=10) == 2
    finally:
        stuck.set()


async def test_a_tell_that_fails_to_be_forwarded_loses_no_other(nodes: list[Node]) -> None:
    """A host's placement function that raises for one key, forwarding a tell for it, makes that
    tell a dead letter with the error; the tells queued behind it are forwarded all the same."""
    a, b, client = nodes
    host = await a.host(account_class(a), name="acct42", lease=LEASE)
    await b.host(account_class(b), name="acct42", lease=LEASE)

    async def both_heard() -> bool:
        hosts = {h.node for h in await client.entities.wait_for_hosts("acct42", 5.0)}
        return hosts == {a.node_id, b.node_id} and len(a.entities.hosts.live("acct42")) == 2

    await wait_until(both_heard, 10.0)
    client.entities.placement = lambda key, hosts: next(h for h in hosts if h.node == a.node_id)
    keys = [f"k{i}" for i in range(5)]
    for key in ["bad", *keys]:
        assert await client.entity("acct42", key, Account).ask(Balance()) == 0
    assert set(host.activations) == {"bad", *keys}

    def placement(key: str, hosts: Sequence[Host]) -> Host:
        if key == "bad":
            raise RuntimeError("no place for bad")
        return hosts[0]

    a.entities.placement = placement
    held = asyncio.Event()
    lookup_entry = host.placements.lookup_entry

    async def held_for_bad(key: str) -> tuple[Owner | None, int] | None:
        if key == "bad":
            await held.wait()
        return await lookup_entry(key)

    host.placements.lookup_entry = held_for_bad  # type: ignore[method-assign]
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    forged = {"Actorio-Lease": "9" * 18}  # a newer claim than a's: forwarded, through b, back to a
    for key in ["bad", *keys]:
        await nc.publish(
            f"{client.prefix}.entity.acct42.{a.node_id}.{key}",
            b'{"type":"Add","data":{"amount":1}}',
            headers=forged,
        )
    forwarder = host._forwarder  # pyright: ignore[reportPrivateUsage]

    async def all_queued() -> bool:
        return len(forwarder) == 1 + len(keys)

    await wait_until(all_queued, 10.0)
    held.set()
    from actorio import dead_letters

    async def all_handled() -> bool:
        balances = [await client.entity("acct42", key, Account).ask(Balance()) for key in keys]
        return balances == [1] * len(keys)

    await wait_until(all_handled, 20.0)
    [letter] = [d for d in dead_letters.of("acct42/bad") if d.reason == "stopped"]
    assert isinstance(letter.error, RuntimeError)
    assert str(letter.error) == "no place for bad"


async def test_the_forwarding_queue_counts_headers_and_keeps_what_a_key_held(nodes: list[Node]) -> None:
    """The queue of tells to forward is bounded by their size on the wire, headers included
    (tells with empty payloads and large headers counted nothing); what a key held within its
    own bound, forwarded when its activation gives up, is queued whatever the queue holds."""
    a, _, client = nodes
    host = await a.host(account_class(a), name="acct43", lease=LEASE)
    assert await client.entity("acct43", "target", Account).ask(Balance()) == 0
    held = asyncio.Event()
    lookup_entry = host.placements.lookup_entry

    async def held_reads(key: str) -> tuple[Owner | None, int] | None:
        await held.wait()
        return await lookup_entry(key)

    host.placements.lookup_entry = held_reads  # type: ignore[method-assign]
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    subject = f"{client.prefix}.entity.acct43.{a.node_id}.target"
    headers = {"Actorio-Lease": "9" * 18, "X-Padding": "p" * 200_000}
    forwarder = host._forwarder  # pyright: ignore[reportPrivateUsage]
    from actorio import dead_letters
    from actorio.nats._forwarding import MAX_BYTES

    try:
        for _ in range(100):  # 20 MB of headers
            await nc.publish(subject, b"", headers=headers)

        async def all_arrived() -> bool:
            overflow = [d for d in dead_letters.of("acct43/target") if d.reason == "overflow"]
            return len(forwarder) + len(overflow) == 100

        await wait_until(all_arrived, 60.0)  # 20 MB through the server: slow on a loaded machine
        queued = len(forwarder)
        assert 0 < queued < 100
        assert forwarder._bytes <= MAX_BYTES  # pyright: ignore[reportPrivateUsage]
        [msg, *_] = [m for m, _, _ in forwarder._queue]  # pyright: ignore[reportPrivateUsage]
        forwarder.forward(msg, "target")
        assert len(forwarder) == queued  # full: a dead letter
        forwarder.forward(msg, "target", admitted=True)
        assert len(forwarder) == queued + 1  # held within a key's bound already: queued
    finally:
        held.set()


async def test_a_wake_header_on_a_message_with_a_payload_is_refused_not_dropped(nodes: list[Node]) -> None:
    """Actorio's wakes are empty tells: a message with a payload (or a reply address) and an
    ``Actorio-Wake`` header was not sent by actorio. It is not handled, and it is refused where
    it enters: a dead letter ``invalid`` for a tell, an error reply for an ask."""
    from actorio import dead_letters

    a, _, client = nodes
    host = await a.host(account_class(a), name="acct13", lease=LEASE)
    ref = client.entity("acct13", "w", Account)
    assert await ref.ask(Balance()) == 0  # active: its lease's claim is in the bucket
    owner = await host.placements.lookup("w")
    assert owner is not None
    nc = client._nc  # pyright: ignore[reportPrivateUsage]
    subject = f"{client.prefix}.entity.acct13.{a.node_id}.w"
    headers = {"Actorio-Lease": str(owner.claim), "Actorio-Wake": "1"}
    await nc.publish(subject, b'{"type":"Add","amount":7}', headers=headers)
    reply = await nc.request(subject, b'{"type":"Balance"}', headers=headers, timeout=5)
    assert (reply.headers or {}).get("Actorio-Status") == "error"
    assert b"Actorio-Wake" in reply.data

    async def recorded() -> bool:
        return any(letter.recipient == "acct13/w" for letter in dead_letters.of(reason="invalid"))

    await wait_until(recorded, 10.0)
    await nc.publish(subject, b"", headers=headers)  # a real wake: no dead letter, nothing handled
    assert await ref.ask(Balance()) == 0
    assert [letter.recipient for letter in dead_letters.of(reason="invalid")].count("acct13/w") == 1


async def test_a_type_nobody_hosts_does_not_hold_up_tell_nowaits_to_other_types(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``tell_nowait`` to a type nobody hosts waits (up to ``ask_timeout``) for a host; the
    tells to other types, told after it, are delivered meanwhile. Closing the node sends what it
    can within its timeout and counts the rest in a warning."""
    handled = asyncio.Event()

    class Noted(Account):
        @handles(Add)
        async def add(self, msg: Add) -> None:
            handled.set()

    async with await Node.connect(nats_url, ask_timeout=60.0) as node:
        try:
            await node.host(Noted, name="acct-beside-ghost", lease=LEASE)
            node.entity("ghost-beside", "k", Account).tell_nowait(Add(amount=1))  # waits for a host
            node.entity("acct-beside-ghost", "k", Account).tell_nowait(Add(amount=1))
            await asyncio.wait_for(handled.wait(), 10)  # well before the ghost's 60 s
        finally:
            await node.close(timeout=0.5)  # the ghost's tell would wait for a host
    assert "1 tell(s) to entities of type 'ghost-beside' not sent: the node closed" in caplog.text
