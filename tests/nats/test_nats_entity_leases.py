"""Lease timing: the arithmetic of `Lease`, and what a host does at each moment of a lease
(`EntityHost.check`, given the time), against a real bucket. The lease is long (60 s) so that the
host's own ticker, running in real time, reaches none of those moments during a test: each one is
reached by calling ``check`` with the time wanted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import cast

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg

from actorio import Actor, Message, handles
from actorio.nats import EntityHost, Node
from actorio.nats._entities import PROBE_ANSWERS
from actorio.nats._placement import Hosts, Lease, _encode_owner, announcement  # pyright: ignore[reportPrivateUsage]
from tests.nats_support.processes import wait_until

ASYNC = pytest.mark.asyncio(loop_scope="function")

LONG = 60.0
IDLE = 20.0  # before the fence (45 s after a renewal): idle passivation comes first
STOPS: list[str] = []


class Ping(Message[str]):
    pass


class Counter(Actor[Ping]):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    async def mainloop_teardown(self) -> None:
        STOPS.append(self.key)

    @handles(Ping)
    async def ping(self, msg: Ping) -> str:
        return self.key


def test_the_fence_comes_before_expiry_and_renewals_before_the_fence() -> None:
    lease = Lease(claim=7, revision=7, sent_at=100.0, ttl=10.0, guard=2.5)
    assert lease.fence_at == 107.5  # sent_at + ttl - guard: stopped before the entry can expire
    assert lease.renew_at == 102.5  # a third of the way to the fence: two renewals may fail
    assert lease.valid(107.4999)
    assert not lease.valid(107.5)
    renewed = lease.renewed(revision=9, sent_at=102.6)
    assert (renewed.claim, renewed.revision) == (7, 9)  # the claim, the fencing token, stays
    assert renewed.fence_at == pytest.approx(110.1)


@pytest_asyncio.fixture
async def hosted(node: Node) -> AsyncIterator[EntityHost]:
    STOPS.clear()
    yield await node.host(Counter, name=f"counter{id(node)}", lease=LONG, idle_timeout=IDLE)


async def activate(node: Node, host: EntityHost, key: str) -> Lease:
    assert await node.entity(host.entity_type, key, Counter).ask(Ping()) == key
    lease = host.activations[key].lease
    assert lease is not None
    return lease


@ASYNC
async def test_a_lease_is_renewed_when_due_and_not_before(node: Node, hosted: EntityHost) -> None:
    lease = await activate(node, hosted, "renewed")
    activation = hosted.activations["renewed"]
    hosted.check(lease.renew_at - 0.001)
    before = activation.renewal
    hosted.check(lease.renew_at)
    assert before is None
    assert activation.renewal is not None

    async def renewed() -> bool:
        return hosted.activations["renewed"].lease is not lease

    await wait_until(renewed, 10.0)
    after = hosted.activations["renewed"].lease
    assert after is not None
    assert after.claim == lease.claim
    assert after.revision > lease.revision
    assert after.fence_at > lease.fence_at
    owner = await hosted.placements.lookup("renewed")
    assert owner is not None
    assert (owner.node, owner.claim) == (node.node_id, lease.claim)


@ASYNC
async def test_at_its_fence_an_activation_stops_and_leaves_its_entry_to_expire(
    node: Node, hosted: EntityHost
) -> None:
    lease = await activate(node, hosted, "fenced")
    hosted.activations["fenced"].last = lease.fence_at - 1.0  # busy until then: not idle
    hosted.check(lease.fence_at - 0.001)
    assert hosted.active("fenced") is not None
    hosted.check(lease.fence_at)

    async def stopped() -> bool:
        return "fenced" not in hosted.activations

    await wait_until(stopped, 10.0)
    assert STOPS == ["fenced"]  # its teardown ran
    # Not released: the entry is left to expire (a fenced node cannot know it still owns it).
    owner = await hosted.placements.lookup("fenced")
    assert owner is not None
    assert owner.claim == lease.claim


@ASYNC
async def test_an_idle_activation_is_passivated_and_its_key_released(node: Node, hosted: EntityHost) -> None:
    await activate(node, hosted, "idle")
    last = hosted.activations["idle"].last
    hosted.check(last + IDLE - 0.001)
    assert hosted.active("idle") is not None
    hosted.check(last + IDLE)

    async def released() -> bool:
        return "idle" not in hosted.activations and await hosted.placements.lookup("idle") is None

    await wait_until(released, 10.0)
    assert STOPS == ["idle"]


@ASYNC
async def test_a_message_after_the_fence_is_not_handled_by_the_fenced_activation(
    node: Node, hosted: EntityHost
) -> None:
    """The fence is checked at delivery too, not only by the ticker: a message that arrives
    after it (the process was paused, say) stops the activation instead of reaching it."""
    lease = await activate(node, hosted, "late")
    activation = hosted.activations["late"]
    activation.lease = Lease(lease.claim, lease.revision, lease.sent_at - LONG, LONG, lease.guard)
    # Its entry is still ours (not expired at the server): the message activates it again, here.
    assert await node.entity(hosted.entity_type, "late", Counter).ask(Ping(), timeout=10) == "late"
    assert STOPS == ["late"]
    assert hosted.started == 2


def test_host_announcements_are_read_as_hostile() -> None:
    """Announcements come from anyone who may publish on the subject: bounded, checked, and a
    host is live for three of its periods (by the clock given)."""
    now = [100.0]
    hosts = Hosts(cast(Client, None), prefix="actorio", clock=lambda: now[0])
    for bad in [
        b"",
        b"not json",
        b"[]",
        b'{"node": "a.b", "every": 1, "types": {}}',
        b'{"node": "n1", "every": 0, "types": {"T": 1}}',
        b'{"node": "n1", "every": true, "types": {"T": 1}}',
        b'{"node": "n1", "every": 1, "types": []}',
        b'{"node": "n1", "every": 1, "types": {"T": 1}, "pad": "' + b"x" * 20000 + b'"}',
        json.dumps({"node": "n1", "every": 1, "types": {f"T{i}": 1 for i in range(101)}}).encode(),
        b"[" * 100000,
    ]:
        hosts.heard(bad)
    assert hosts.live("T") == []
    hosts.heard(b'{"node": "n1", "every": 1, "types": {"T": 3, "bad.type": 1, "U": -1, "V": true}}')
    assert [(h.node, h.load) for h in hosts.live("T")] == [("n1", 3)]
    assert hosts.live("U") == []
    assert hosts.live("V") == []
    assert hosts.live("bad.type") == []
    now[0] += 3.0
    assert len(hosts.live("T")) == 1
    now[0] += 0.001
    assert hosts.live("T") == []  # silent for three periods
    assert hosts.gone("T", "n1")
    assert not hosts.gone("T", "never-heard")
    hosts.heard(b'{"node": "n1", "every": 1, "types": {"T": 0}}')
    assert not hosts.gone("T", "n1")
    hosts.heard(b'{"node": "n1", "every": 1, "types": {}}')  # it left
    assert hosts.live("T") == []
    hosts.heard(b'{"node": "n1", "every": 61, "types": {"T": 1}}')  # live for three minutes: no
    assert hosts.live("T") == []
    hosts.heard(b'{"node": "n1", "every": 1, "types": {"T": 1}}')
    hosts.heard(b'{"node": "n1", "every": 1, "types": {"T": -1}}')  # T not validly announced: gone
    assert hosts.live("T") == []
    hosts.heard(b'{"node": "n1", "every": 1, "types": {"T": 1}}')
    hosts.heard(b'{"node": "n1", "every": 1, "types": {}}')
    assert hosts.live("T") == []


def test_a_flood_of_host_announcements_is_bounded_in_memory_and_in_cost() -> None:
    """Announcements of many new type names from many nodes: the (type, host) pairs remembered
    stay within 10,000 (the hosts known before the flood stay), and an announcement costs what
    it holds, not what is remembered: a node's leaving forgets its types only."""
    hosts = Hosts(cast(Client, None), prefix="actorio", clock=lambda: 100.0)
    hosts.heard(b'{"node": "real", "every": 1, "types": {"Account": 2}}')
    for n in range(300):
        types = {f"T{n}x{i}": 0 for i in range(100)}
        hosts.heard(json.dumps({"node": f"fake{n}", "every": 1, "types": types}).encode())
    remembered = sum(len(nodes) for nodes in hosts._hosts.values())  # pyright: ignore[reportPrivateUsage]
    assert remembered == 10_000
    assert len(hosts._hosts) <= 10_000  # no type without a host  # pyright: ignore[reportPrivateUsage]
    assert [host.node for host in hosts.live("Account")] == ["real"]
    hosts.heard(b'{"node": "fake0", "every": 1, "types": {}}')  # it left: its 100 pairs go
    assert sum(len(nodes) for nodes in hosts._hosts.values()) == 9_900  # pyright: ignore[reportPrivateUsage]
    hosts.heard(b'{"node": "late", "every": 1, "types": {"Account": 0}}')  # room again
    assert sorted(host.node for host in hosts.live("Account")) == ["late", "real"]


@ASYNC
async def test_a_flood_of_probes_gets_few_announcements(node: Node, hosted: EntityHost) -> None:
    """Anyone may probe: 200 probes at once get PROBE_ANSWERS announcements at once and one
    more a quarter period later, not 200."""
    spy = await nats.connect(node.url)
    try:
        heard: list[bytes] = []

        async def on_announcement(msg: Msg) -> None:
            if json.loads(msg.data)["node"] == node.node_id:
                heard.append(msg.data)

        await spy.subscribe("actorio.entities.hosts", cb=on_announcement)
        await spy.flush()
        await spy.flush()
        for _ in range(200):
            await spy.publish("actorio.entities.probe", b"")
        await spy.flush()

        async def answered() -> bool:
            return len(heard) >= PROBE_ANSWERS + 1

        await wait_until(answered, 10.0)
        assert len(heard) <= PROBE_ANSWERS + 3  # and at most two of the announcements each second
    finally:
        await spy.close()


@ASYNC
async def test_a_renewal_written_after_it_was_given_up_on_is_adopted(node: Node, hosted: EntityHost) -> None:
    """A renewal that timed out here may still have been written: the next one finds the entry
    still this lease's and renews on its revision, instead of taking it for someone else's."""
    lease = await activate(node, hosted, "slow")
    kv = hosted.placements._kv  # pyright: ignore[reportPrivateUsage]
    await kv.update("slow", _encode_owner(node.node_id, lease.claim), last=lease.revision)
    hosted.check(lease.renew_at)
    activation = hosted.activations["slow"]

    async def renewed() -> bool:
        return activation.lease is not lease and activation.renewal is None

    await wait_until(renewed, 10.0)
    assert hosted.active("slow") is not None
    assert STOPS == []


@ASYNC
async def test_a_forged_newer_claim_costs_a_read_of_the_bucket_not_a_write(
    node: Node, hosted: EntityHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message routed with a claim newer than the activation's makes the host read the bucket,
    which still names the activation: no renewal is written (a flood of forged ``Actorio-Lease``
    headers made one compare-and-set after another), the activation keeps its lease, and the
    message is not handled. The host's clock is held still: no renewal falls due meanwhile."""
    from actorio import dead_letters

    lease = await activate(node, hosted, "forged")
    now = hosted._clock()  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setattr(hosted, "_clock", lambda: now)
    placements = hosted.placements
    writes: list[str] = []
    reads: list[str] = []
    renew, lookup_entry = placements.renew, placements.lookup_entry

    async def counted_renew(key: str, held: Lease) -> Lease | None:
        writes.append(key)
        return await renew(key, held)

    async def counted_lookup(key: str) -> tuple[object, int] | None:
        reads.append(key)
        return await lookup_entry(key)

    monkeypatch.setattr(placements, "renew", counted_renew)
    monkeypatch.setattr(placements, "lookup_entry", counted_lookup)
    subject = f"{node.prefix}.entity.{hosted.entity_type}.{node.node_id}.forged"
    for i in range(50):
        await node.client.publish(subject, b'{"type":"Ping"}', headers={"Actorio-Lease": str(10**15 + i)})

    async def all_refused() -> bool:
        return len(dead_letters.of(f"{hosted.entity_type}/forged")) >= 50

    await wait_until(all_refused, 20.0)
    assert writes == []
    assert "forged" in reads
    assert hosted.activations["forged"].lease is lease
    assert STOPS == []


@ASYNC
async def test_an_entry_whose_claim_is_beyond_its_revision_names_no_owner(
    node: Node, hosted: EntityHost
) -> None:
    """A claim is the revision of its entry's create: never beyond the entry's own revision. An
    entry that says otherwise was not written by a host, and names no owner. (Read as naming
    this host with that claim, it made senders route the key's tells with it for a minute, and
    the host refused each: lost, even once the entry was gone.)"""
    from actorio import dead_letters

    kv = hosted.placements._kv  # pyright: ignore[reportPrivateUsage]
    await kv.put("bob", json.dumps({"node": node.node_id, "claim": 10**12}).encode())
    assert await hosted.placements.lookup("bob") is None
    ref = node.entity(hosted.entity_type, "bob", Counter)
    for _ in range(3):
        await ref.tell(Ping())
    assert await ref.ask(Ping(), timeout=10) == "bob"
    owner = await hosted.placements.lookup("bob")
    assert owner is not None
    assert owner.node == node.node_id
    assert owner.claim < 10**12
    assert dead_letters.of(f"{hosted.entity_type}/bob") == []


def test_a_host_is_live_until_it_goes_silent_or_announces_it_left() -> None:
    """`Hosts.is_live`: heard of within three periods, and not since it announced that it left
    the type (a sender keeps a route to a node that is not live for a second only)."""
    now = [100.0]
    hosts = Hosts(cast(Client, None), prefix="actorio", clock=lambda: now[0])
    assert not hosts.is_live("T", "n1")  # never heard of
    hosts.heard(announcement("n1", 1.0, {"T": 0, "U": 0}))
    assert hosts.is_live("T", "n1")
    hosts.heard(announcement("n1", 1.0, {"U": 0}))  # it left T, still hosts U
    assert not hosts.is_live("T", "n1")
    assert hosts.is_live("U", "n1")
    now[0] = 103.0
    assert hosts.is_live("U", "n1")  # three periods
    now[0] = 103.001
    assert not hosts.is_live("U", "n1")  # silent
    hosts.heard(announcement("n1", 1.0, {"T": 0}))  # back for T; U left
    assert hosts.is_live("T", "n1")
    assert not hosts.is_live("U", "n1")


@ASYNC
async def test_a_forged_newer_claim_read_when_the_lease_is_due_renews_it(
    node: Node, hosted: EntityHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read a forged newer claim makes holds the activation's renewal slot: when the lease
    is due, it renews it. (It did not: a flood of forged claims kept the slot busy at every tick,
    the lease reached its fence unrenewed, and the entity stopped, its state lost.)"""
    lease = await activate(node, hosted, "due")
    monkeypatch.setattr(hosted, "_clock", lambda: lease.renew_at)
    activation = hosted.activations["due"]
    await hosted._renew(activation, lease, if_moved=True)  # pyright: ignore[reportPrivateUsage]
    renewed = activation.lease
    assert renewed is not None
    assert renewed is not lease
    assert renewed.claim == lease.claim
    assert renewed.revision > lease.revision
    assert STOPS == []


class SlowStart(Counter):
    """An entity whose start takes past its lease's fence (a slow constructor, a stalled loop),
    by the host's clock, which ``CLOCK`` moves."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        CLOCK[0] += LONG


CLOCK = [0.0]


@ASYNC
async def test_an_activation_fenced_before_its_first_message_is_passivated_not_spun(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messages that waited for the activation were delivered one by one, each found fenced
    and held again: a loop that never yielded, the node's event loop stuck (the suite's timeout
    ended it). They are now left held, and the fenced activation passivates."""
    STOPS.clear()
    CLOCK[0] = 0.0
    host = await node.host(SlowStart, name=f"slow{id(node)}", lease=LONG, idle_timeout=IDLE)
    clock = host._clock  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setattr(host, "_clock", lambda: clock() + CLOCK[0])
    ref = node.entity(host.entity_type, "slow", SlowStart)
    await ref.tell(Ping())  # (a tell: its sender waits for nothing)

    async def passivated() -> bool:
        return host.started == 1 and "slow" not in host.activations  # started, fenced, stopped

    await wait_until(passivated, 10.0)
