"""Junk and overload on a real nats-server: what the receiving node keeps, and what it drops."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from nats.aio.client import Client

import actorio.nats._export_lanes as export_lanes
from actorio import Actor, MailboxFull, Message, dead_letters, handles
from actorio.lowlevel import mailbox_of
from actorio.nats import ActorNotFound, Node
from actorio.nats._batch import BATCH
from tests.nats_support.actors import Greeter, Report
from tests.nats_support.processes import wait_until, worker

pytestmark = pytest.mark.asyncio(loop_scope="function")

JUNK_TELLS = int(os.environ.get("ACTORIO_JUNK_TELLS", "300"))
"""How many invalid 1 MB tells the memory test sends (1,000 for the issue's figure: about 5 s)."""


def rss_mb(pid: int) -> float:
    """A process's resident memory (``VmRSS``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")
@pytest.mark.timeout(120)
async def test_invalid_megabyte_tells_do_not_grow_a_workers_memory(nats_url: str, node: Node) -> None:
    """A worker receives ``JUNK_TELLS`` invalid tells of 1 MB each (half not JSON, half an invalid
    field of 1 MB): each is a dead letter whose record keeps a 1 KB preview, and the worker's
    resident memory grows by less than 50 MB."""
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "junk") as process:
        ref = node.ref("junk", Greeter)

        async def answers() -> bool:
            # The worker's publish can return before the server has its subscription (nats-py
            # 2.16 flushes before the SUB is written): ask again until it answers.
            try:
                await ref.ask(Report(), timeout=10)
            except ActorNotFound:
                return False
            return True

        await wait_until(answers, 10)
        before = rss_mb(process.process.pid)
        not_json = b"\x00" * 1_000_000
        bad_field = b'{"type":"Record","data":{"n":"' + b"x" * 999_960 + b'"}}'
        for n in range(JUNK_TELLS):
            await ref.tell_payload(not_json if n % 2 else bad_field)
            if n % 25 == 24:
                # An ask after each 25 MB: the server holds less than its limit for the worker
                # (64 MB), past which it would close the worker's connection as a slow consumer.
                assert await ref.ask(Report(), timeout=60) == []
        assert await ref.ask(Report(), timeout=60) == []  # after every junk tell: all refused
        grown = rss_mb(process.process.pid) - before
        assert grown < 50, f"the worker's RSS grew by {grown:.0f} MB"


class Job(Message):
    id: int


class Parked(Actor[Job | Report]):
    """Handles jobs once its gate opens; a mailbox of one."""

    mailbox_capacity = 1

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.parked = False
        self.done: list[int] = []

    @handles(Job)
    async def job(self, msg: Job) -> None:
        self.parked = True
        await self.gate.wait()  # parked until the test opens the gate
        self.done.append(msg.id)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return list(self.done)


async def test_messages_dropped_on_arrival_are_dead_letters_and_a_warning(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A parked actor with small pending limits: what the client drops is counted as dead letters
    ``overflow`` (handled + dropped = sent), reported by one WARNING; an ask dropped so fails at
    once with `MailboxFull`."""
    async with await Node.connect(nats_url) as server_side, await Node.connect(nats_url) as client:
        parked = Parked()
        await server_side.publish("parked", parked, pending_limits=(5, 1_000_000))
        await server_side.client.flush()  # see test_nats_hostile.publish
        mailbox = mailbox_of(parked.reference)
        assert mailbox is not None
        ref = client.ref("parked", Parked)
        with caplog.at_level(logging.WARNING, logger="actorio.nats"):
            for n in range(100):
                await ref.tell(Job(id=n))
            await client.client.flush()

            async def stuck() -> bool:
                # The handler is parked and its mailbox full: the subscription's callback waits for
                # room, and its pending queue no longer empties.
                return parked.parked and len(mailbox) == 1

            await wait_until(stuck, 10)
            for n in range(100, 120):  # more than the pending queue can take: it is full now
                await ref.tell(Job(id=n))
            with pytest.raises(MailboxFull, match="parked"):  # dropped: at once (not a timeout)
                await ref.ask(Report(), timeout=30)
            asks_dropped = 1
            parked.gate.set()
            report: list[int] | None = None
            while report is None:  # the pending queue empties once the gate is open
                try:
                    report = await ref.ask(Report(), timeout=10)
                except MailboxFull:
                    asks_dropped += 1
        tells_dropped = dead_letters.counts["overflow"] - asks_dropped
        assert tells_dropped >= 100
        assert len(report) + tells_dropped == 120
        assert sorted(report) == report  # what was kept was handled in order
        letters = dead_letters.of(reason="overflow")
        assert letters[0].recipient == parked.identifier
        assert letters[0].message == "a message to actorio.actor.parked, dropped unread"
        warnings = [r for r in caplog.records if "dropped on arrival" in r.getMessage()]
        assert len(warnings) == 1
        assert "pending_limits (5 messages, 1000000 bytes)" in warnings[0].getMessage()
        await parked.stop()


async def test_pending_limits_are_checked(node: Node) -> None:
    for bad in ((0, 10), (10,), (1.5, 10), "10", (True, 10)):
        with pytest.raises(ValueError, match="pending_limits"):
            await node.publish("limited", Parked(), pending_limits=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="core publications"):
        await node.publish("limited", Parked(), durable=True, pending_limits=(10, 10))


class Fan(Message):
    """Tell the sender ``count`` jobs, numbered from ``first``."""

    first: int
    count: int


class Relay(Actor[Fan]):
    @handles(Fan)
    async def fan(self, msg: Fan) -> None:
        for n in range(msg.first, msg.first + msg.count):
            await msg.sender.tell(Job(id=n))


class Tally(Actor[Job | Report]):
    """Keeps the jobs it is told, at once."""

    def __init__(self) -> None:
        super().__init__()
        self.done: list[int] = []

    @handles(Job)
    async def job(self, msg: Job) -> None:
        self.done.append(msg.id)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return list(self.done)


async def test_a_full_sender_mailbox_holds_up_no_other_sender(nats_url: str, node: Node) -> None:
    """Two local actors travel as senders to a remote relay, which tells each of them jobs back
    on the node's one subscription for sender addresses. The first is parked with a mailbox of
    one: its jobs wait, in order, and the second still gets its own at once. Once the first is
    let go, it handles all of its jobs (a batch is not cut to its capacity), in order."""
    async with await Node.connect(nats_url) as remote:
        await remote.publish("relay", Relay())
        await remote.client.flush()
        relay = node.ref("relay", Relay)
        parked, tally = Parked(), Tally()
        async with parked, tally:
            await relay.tell(Fan(first=0, count=30, sender=parked))

            async def stuck() -> bool:
                mailbox = mailbox_of(parked)
                return parked.parked and mailbox is not None and len(mailbox) == 1

            await wait_until(stuck, 10)
            for first in range(0, 50, 10):  # several NATS messages, after the parked one's
                await relay.tell(Fan(first=first, count=10, sender=tally))

            async def all_told() -> bool:
                return len(tally.done) == 50

            await wait_until(all_told, 10)  # held up behind the parked mailbox before
            assert tally.done == list(range(50))
            assert parked.done == []
            parked.gate.set()

            async def all_handled() -> bool:
                return len(parked.done) == 30

            await wait_until(all_handled, 10)
            assert parked.done == list(range(30))
            assert dead_letters.counts["overflow"] == 0


async def test_headers_count_against_a_publications_pending_bytes(
    nats_url: str, node: Node, raw: Client
) -> None:
    """nats-py counts a message's payload only against a subscription's pending bytes: messages
    of a small payload and large headers piled up far beyond ``pending_limits`` (397 messages of
    1 MB headers held under 8 MiB). Now they count whole: beyond the limit they are dropped on
    arrival, dead letters ``overflow``."""
    parked = Parked()
    await node.publish("parked", parked, pending_limits=(10_000, 100_000))
    await node.client.flush()
    mailbox = mailbox_of(parked.reference)
    assert mailbox is not None
    assert mailbox.putters is not None
    subject = f"{node.prefix}.actor.parked"
    try:
        for n in range(3):
            await raw.publish(subject, b'{"type":"Job","data":{"id":%d}}' % n)

        async def stuck() -> bool:  # job 0 handled, 1 in the mailbox, 2 waiting for room
            return parked.parked and bool(mailbox.putters)

        await wait_until(stuck, 10)
        padding = {"X-Pad": "a" * 20_000}  # about 20 KB a message counted whole, 30 bytes unpadded
        for n in range(3, 23):
            await raw.publish(subject, b'{"type":"Job","data":{"id":%d}}' % n, headers=padding)
        await raw.flush()

        async def dropped() -> bool:  # at most five of 20 KB fit in 100,000 bytes
            return dead_letters.counts["overflow"] >= 15

        await wait_until(dropped, 10)
    finally:
        parked.gate.set()

    async def all_done() -> bool:
        return len(parked.done) + dead_letters.counts["overflow"] == 23

    await wait_until(all_done, 10)
    assert parked.done == sorted(parked.done)
    assert parked.done[:3] == [0, 1, 2]
    assert 15 <= dead_letters.counts["overflow"] <= 17
    await parked.stop()


@pytest.mark.parametrize(
    "limits",
    [
        {"LANE_MESSAGES": 3},
        {"LANE_BYTES": 3_500, "MESSAGE_COST": 1_000},  # three messages of about 1,100 bytes
        {"NODE_BYTES": 3_500, "MESSAGE_COST": 1_000},  # the same, for all the node's lanes
    ],
    ids=["messages", "bytes", "node-bytes"],
)
async def test_what_a_full_sender_lane_cannot_hold_is_dropped(
    node: Node, raw: Client, monkeypatch: pytest.MonkeyPatch, limits: dict[str, int]
) -> None:
    """A parked sender's lane holds at most ``LANE_MESSAGES`` messages and ``LANE_BYTES`` bytes,
    and a node's lanes together ``NODE_BYTES``: a tell beyond is a dead letter ``overflow``, an
    ask beyond is answered `MailboxFull` at once; what was kept is handled in order once the
    actor is let go."""
    for name, value in limits.items():
        monkeypatch.setattr(export_lanes, name, value)
    parked = Parked()
    async with parked:
        try:
            address = node._addresses.address_of(parked.reference)  # what travels as its sender
            mailbox = mailbox_of(parked)
            assert mailbox is not None
            assert mailbox.putters is not None
            for n in range(3):
                await raw.publish(address, b'{"type":"Job","data":{"id":%d}}' % n)

            async def delivery_waits() -> bool:
                # Job 0 handled (parked), job 1 in the mailbox, job 2 held by the lane's delivery,
                # which waits for room: the lane is empty, and stays as the next ones leave it.
                return parked.parked and bool(mailbox.putters)

            await wait_until(delivery_waits, 10)
            for n in range(3, 10):
                await raw.publish(address, b'{"type":"Job","data":{"id":%d}}' % n)
            # After the tells (one connection keeps its order): the lane holds 3 to 5 by then.
            # Answered while the actor is still parked: so at once, not once there was room.
            reply = await raw.request(address, b'{"type":"Report","data":{}}', timeout=10)
            assert b"MailboxFull" in reply.data
            assert dead_letters.counts["overflow"] == 4  # jobs 6 to 9 (the ask is no dead letter)
            parked.gate.set()

            async def all_handled() -> bool:
                return len(parked.done) == 6

            await wait_until(all_handled, 10)
        finally:
            parked.gate.set()  # a failed step must not leave the actor parked (its stop waits)
    assert parked.done == list(range(6))
    assert dead_letters.counts["overflow"] == 4
    assert dead_letters.of(reason="overflow")[0].recipient == parked.identifier


class BoundedTally(Tally):
    mailbox_capacity = 10


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="eager tasks: Python 3.12+")
async def test_an_eager_task_factory_loses_nothing_sent_to_a_bounded_sender(
    nats_url: str, node: Node
) -> None:
    """With an eager task factory a lane's delivery runs as soon as it is made: it must find the
    message already in the lane (it found none, ended, and the message waited for ever)."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        async with await Node.connect(nats_url) as remote:
            await remote.publish("relay", Relay())
            await remote.client.flush()
            tally = BoundedTally()
            async with tally:
                await node.ref("relay", Relay).tell(Fan(first=0, count=5, sender=tally))

                async def all_told() -> bool:
                    return len(tally.done) == 5

                await wait_until(all_told, 10)
                assert tally.done == list(range(5))
    finally:
        loop.set_task_factory(None)


def _jobs(*ids: int) -> bytes:
    """A batch of tells of these jobs, as a batched reference sends it."""
    return b"\n".join(b'{"type":"Job","data":{"id":%d}}' % n for n in ids)


@pytest.mark.parametrize("batched", [False, True], ids=["tells", "batches"])
async def test_what_a_closing_node_holds_for_a_sender_is_dead_letters(
    nats_url: str, raw: Client, batched: bool
) -> None:
    """Six tells to a parked sender with a mailbox of one: one handled, one queued; the node
    closes meanwhile, and the four it held (three in the lane, one waiting for room) are dead
    letters, one a tell, none lost without a trace and none that was delivered. As batches (of
    2, 2 and 2, then of 4): the same four dead letters."""
    parked = Parked()
    async with parked:
        node = await Node.connect(nats_url)
        try:
            address = node._addresses.address_of(parked.reference)
            if batched:
                await raw.publish(address, _jobs(0, 1, 2, 3), headers={BATCH: "4"})
                await raw.publish(address, _jobs(4, 5), headers={BATCH: "2"})
            else:
                for n in range(6):
                    await raw.publish(address, b'{"type":"Job","data":{"id":%d}}' % n)
            await raw.flush()
            in_lane = 1 if batched else 3

            async def all_there() -> bool:  # one handled, one queued, one held, the rest in the lane
                mailbox = mailbox_of(parked)
                lanes = node._lanes._lanes  # pyright: ignore[reportPrivateUsage]
                held = sum(len(lane.queue) for lane in lanes.values())
                return parked.parked and mailbox is not None and len(mailbox) == 1 and held == in_lane

            await wait_until(all_there, 10)
            await node.close(timeout=0.2)  # the delivery waits for room for ever: cancelled
            letters = dead_letters.of(reason="stopped")
            assert sorted(letter.message for letter in letters) == [
                b'{"type":"Job","data":{"id":%d}}' % n for n in (2, 3, 4, 5)
            ]
        finally:
            await node.close(timeout=0.2)
            parked.gate.set()
        assert await parked.reference.ask(Report(), timeout=10) == [0, 1]


async def test_a_held_message_costs_what_its_headers_hold_too() -> None:
    """3,000 headers of ten bytes cost a parsed dict and 6,000 strings: about 90 bytes each
    measured, where their length alone counted seven."""
    from nats.aio.msg import Msg

    headers = {f"k{n:05}": "v" for n in range(3000)}
    msg = Msg(None, subject="actorio.node.n.t", data=b"x", headers=headers)  # type: ignore[arg-type]
    assert export_lanes._cost(msg) >= 3000 * 90  # pyright: ignore[reportPrivateUsage]
