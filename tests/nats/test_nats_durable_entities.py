"""Durable entity types on a real nats-server (several nodes in one process): tells stored before
they return, handled in per-key order, acknowledged after their handler; a failing handler's
message delivered again then moved to the dead-letter stream while the host and the other keys
carry on; a lost wake recovered by the host's scan; forged messages in the mailbox stream.

Failover across OS processes (``kill -9``) is in test_nats_durable_entities_failover.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import nats
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from typing_extensions import assert_type

from actorio import Actor, ActorRef, Backoff, DeadLetter, Message, SupervisorStrategy, dead_letters, handles
from actorio.nats import DeliveryLimitReached, Durable, EntityHost, EntityRef, LocalServer, Node
from actorio.nats._durable_entities import mailbox_stream, mailbox_subject, shard_of
from actorio.nats._durable_shards import ShardPump
from actorio.nats._shard_keys import MAX_ACK_PENDING, ShardKey, stuck_limit
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 2.0
FAST = Durable(max_deliver=3, retry_backoff=Backoff(min_delay=0.05, max_delay=0.2))


class Put(Message):
    """Told: ``seq`` is noted, in the order handled; ``fail`` makes the handler raise."""

    seq: int
    fail: bool = False


class Seen(Message[list[int]]):
    """Asked: the seqs this activation handled, in order."""


class Ledger(Actor[Put | Seen]):
    """Records, per key and across activations, the seqs its handlers ran on (``HANDLED``)."""

    HANDLED: ClassVar[dict[str, list[int]]] = {}

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.seen: list[int] = []

    @handles(Put)
    async def put(self, msg: Put) -> None:
        Ledger.HANDLED.setdefault(self.key, []).append(msg.seq)
        if msg.fail:
            raise ValueError(f"{self.key}: {msg.seq} is poison")
        self.seen.append(msg.seq)

    @handles(Seen)
    async def read(self, msg: Seen) -> list[int]:
        return self.seen


@pytest_asyncio.fixture
async def pair(nats_url: str) -> AsyncIterator[tuple[Node, Node]]:
    """A hosting node and a client node."""
    Ledger.HANDLED.clear()
    async with await Node.connect(nats_url) as hosting, await Node.connect(nats_url) as client:
        yield hosting, client


async def test_tells_are_handled_in_per_key_order_and_asks_see_them(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    host = await hosting.host(Ledger, name="ledger1", durable=FAST, lease=LEASE)
    assert host.durable is not None
    refs = [client.entity("ledger1", key, Ledger) for key in ("k0", "a=b-", "-_=" * 42 + "z")]
    assert_type(client.entity(Ledger, "x"), EntityRef[Put | Seen])
    for seq in range(1, 21):
        for ref in refs:
            await ref.tell(Put(seq=seq))  # returns once the stream stored it
    refs[0].tell_nowait(Put(seq=21))
    for ref in refs:
        seen = await ref.ask(Seen(), timeout=20)  # stored after the tells: handled after them
        assert_type(seen, list[int])
        assert seen == list(range(1, 21)) + ([21] if ref is refs[0] else [])
    # Each acknowledged once handled: nothing is left in the mailbox (an ask's message is
    # acknowledged after its reply is sent: waited for, not read at once).
    js = client.client.jetstream()

    async def all_acknowledged() -> bool:
        info = await js.stream_info(mailbox_stream("actorio", "ledger1"))
        return info.state.messages == 0

    await wait_until(all_acknowledged, 10)


async def test_a_failing_message_is_delivered_again_then_dead_lettered(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    host = await hosting.host(Ledger, name="ledger2", durable=FAST, lease=LEASE)
    assert host.durable is not None
    gave_up: list[DeadLetter] = []
    dead_letters.add_listener(lambda letter: gave_up.append(letter) if letter.reason == "failed" else None)
    poisoned, other = client.entity("ledger2", "poisoned", Ledger), client.entity("ledger2", "other", Ledger)
    await poisoned.tell(Put(seq=1))
    await poisoned.tell(Put(seq=2, fail=True))
    await poisoned.tell(Put(seq=3))
    for seq in range(1, 4):
        await other.tell(Put(seq=seq))
    assert await other.ask(Seen(), timeout=20) == [1, 2, 3]  # the other key is not held up

    async def dead_lettered() -> bool:
        return any(isinstance(letter.error, DeliveryLimitReached) for letter in gave_up)

    await wait_until(dead_lettered, 20.0)
    assert await poisoned.ask(Seen(), timeout=20) == [3]  # each failure restarted the entity
    # Per-key order: 3 waits until 2 is settled (three deliveries, then the dead-letter stream).
    assert Ledger.HANDLED["poisoned"] == [1, 2, 2, 2, 3]
    stored = await host.durable.dead_letters()
    assert len(stored) == 1
    assert json.loads(stored[0].data)["data"]["seq"] == 2
    assert stored[0].deliveries == 3
    assert stored[0].error_type == "ValueError"
    assert stored[0].subject == mailbox_subject("actorio", "ledger2", "poisoned")
    assert await other.ask(Seen(), timeout=20) == [1, 2, 3]  # the host and other keys carry on


async def test_a_poison_message_is_dead_lettered_even_when_supervision_gives_up(
    pair: tuple[Node, Node],
) -> None:
    """Supervision that gives up passivates the entity: the message's delivery count survives
    into the next activation (the consumer is kept while a message of it is pending)."""
    hosting, client = pair
    await hosting.host(
        Ledger,
        name="ledger7",
        durable=Durable(max_deliver=4, retry_backoff=Backoff(min_delay=0.05, max_delay=0.1)),
        lease=LEASE,
        supervision=SupervisorStrategy(max_restarts=1, within=60.0),
    )
    ref = client.entity("ledger7", "fragile", Ledger)
    await ref.tell(Put(seq=1, fail=True))
    await ref.tell(Put(seq=2))

    async def moved_on() -> bool:
        return Ledger.HANDLED.get("fragile", [])[-1:] == [2]

    await wait_until(moved_on, 6 * LEASE + 10)
    assert Ledger.HANDLED["fragile"] == [1, 1, 1, 1, 2]
    assert len(dead_letters.of(reason="failed")) >= 5  # four failures, then the delivery limit


async def test_a_lost_wake_is_recovered_by_the_host_s_scan(nats_url: str, pair: tuple[Node, Node]) -> None:
    hosting, _ = pair
    await hosting.host(Ledger, name="ledger3", durable=FAST, lease=LEASE)
    raw = await nats.connect(nats_url)
    try:
        js = raw.jetstream()
        # Stored, never woken (as if the sender died between the store and the wake).
        for seq in (1, 2):
            body = json.dumps({"type": "Put", "data": {"seq": seq}}).encode()
            await js.publish(mailbox_subject("actorio", "ledger3", "asleep"), body)

        async def handled() -> bool:
            return Ledger.HANDLED.get("asleep") == [1, 2]

        await wait_until(handled, 4 * LEASE + 5)  # the key was seen by two scans, then woken
    finally:
        await raw.close()


async def test_a_deleted_shard_consumer_is_made_again_and_what_is_stored_is_handled(
    nats_url: str, pair: tuple[Node, Node]
) -> None:
    """An operator (or a process with the right) deletes a shard's durable consumer: the shard's
    pump makes it again, and the tells stored after the deletion are handled."""
    hosting, client = pair
    await hosting.host(Ledger, name="ledger9", durable=FAST, lease=LEASE)
    ref = client.entity("ledger9", "k", Ledger)
    await ref.tell(Put(seq=1))
    assert await ref.ask(Seen(), timeout=20) == [1]
    raw = await nats.connect(nats_url)
    try:
        stream = mailbox_stream("actorio", "ledger9")
        await raw.jetstream().delete_consumer(stream, f"shard-{shard_of('k', Durable.shards)}")
    finally:
        await raw.close()
    await ref.tell(Put(seq=2))  # stored: the stream does not need the consumer
    assert await ref.ask(Seen(), timeout=30) == [1, 2]


async def test_a_host_starting_wakes_the_keys_with_stored_messages(nats_url: str) -> None:
    Ledger.HANDLED.clear()
    async with await Node.connect(nats_url) as first:
        await first.host(Ledger, name="ledger4", durable=FAST, lease=LEASE)
        ref = first.entity("ledger4", "waiting", Ledger)
        await ref.tell(Put(seq=1))
        assert await ref.ask(Seen(), timeout=20) == [1]
    # No host: a tell is still stored (acknowledged), and handled once a host starts.
    async with await Node.connect(nats_url) as client:
        raw = client.client.jetstream()
        body = json.dumps({"type": "Put", "data": {"seq": 2}}).encode()
        await raw.publish(mailbox_subject("actorio", "ledger4", "waiting"), body)
        async with await Node.connect(nats_url) as second:
            await second.host(Ledger, name="ledger4", durable=FAST, lease=LEASE)

            async def handled() -> bool:
                return Ledger.HANDLED.get("waiting") == [1, 2]

            await wait_until(handled, 10.0)


async def test_forged_messages_never_reach_a_handler(nats_url: str, pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    host = await hosting.host(Ledger, name="ledger5", durable=FAST, lease=LEASE)
    assert host.durable is not None
    raw = await nats.connect(nats_url)
    try:
        js = raw.jetstream()
        key = mailbox_subject("actorio", "ledger5", "forged")
        await js.publish(key, b"\xff not json")
        await js.publish(key, json.dumps({"type": "Put", "data": {"seq": "x"}}).encode())
        await js.publish(key, b"{" * 100_000)  # deeply nested: bounded by the protocol's validation
        # A reply subject the node must never publish to: refused before any handler runs.
        forged_reply = {"Actorio-Reply": "$JS.API.STREAM.DELETE.X"}
        await js.publish(key, json.dumps({"type": "Seen", "data": {}}).encode(), headers=forged_reply)
        await js.publish(mailbox_subject("actorio", "ledger5", "bad!key"), b"{}")  # no valid key
        await client.entity("ledger5", "forged", Ledger).tell(Put(seq=7))

        async def refused() -> bool:
            return len(dead_letters.of(reason="invalid")) >= 5

        await wait_until(refused, 4 * LEASE + 10)
        assert Ledger.HANDLED["forged"] == [7]
        assert await host.durable.dead_letters() == []  # the stream keeps what handlers could not take

        async def settled() -> bool:  # every forged message settled, none left behind
            return (await js.stream_info(mailbox_stream("actorio", "ledger5"))).state.messages == 0

        await wait_until(settled, 10)  # (an acknowledgement comes after the handler: waited for)
    finally:
        await raw.close()


async def test_a_plain_host_of_a_durable_type_is_refused(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    await hosting.host(Ledger, name="ledger6", durable=True, lease=LEASE)
    with pytest.raises(ValueError, match="hosted durably"):
        await client.host(Ledger, name="ledger6", lease=LEASE)
    ref: ActorRef[Put | Seen] = client.entity("ledger6", "a", Ledger)
    await ref.tell(Put(seq=1))
    assert await client.entity("ledger6", "a", Ledger).ask(Seen(), timeout=20) == [1]


async def test_an_active_key_goes_on_after_a_server_restart(tmp_path: Path) -> None:
    """The key's shard's consumer survives the restart (it is on file); the activation's pump
    binds to it again, and the stored messages are delivered in order (the stream, on file,
    kept them)."""
    Ledger.HANDLED.clear()
    with LocalServer(store_dir=tmp_path / "js") as server:
        hosting = await Node.connect(server.url, reconnect_wait=0.1)
        client = await Node.connect(server.url, reconnect_wait=0.1)
        async with hosting, client:
            host = await hosting.host(Ledger, name="ledger7", durable=FAST, lease=30.0)
            ref = client.entity("ledger7", "kept", Ledger)
            await ref.tell(Put(seq=1))
            assert await ref.ask(Seen(), timeout=10) == [1]
            entity = host.active("kept")
            assert entity is not None
            server.stop()
            told = asyncio.ensure_future(ref.tell(Put(seq=2)))  # stored once the server is back
            server.start()
            await asyncio.wait_for(told, 15)
            await ref.tell(Put(seq=3))

            async def all_handled() -> bool:
                return Ledger.HANDLED.get("kept") == [1, 2, 3]

            await wait_until(all_handled, 30, interval=0.1)
            assert host.active("kept") is entity  # the same activation: its lease outlived the restart
            assert await ref.ask(Seen(), timeout=10) == [1, 2, 3]


# -- shards ----------------------------------------------------------------------------------------


async def test_a_key_s_shard_is_a_stable_digest_of_the_key() -> None:
    """Every process, of every version, must find a key in the same shard: never ``hash()``."""
    assert [shard_of(key, 64) for key in ("alice", "stuck", "k73")] == [9, 10, 10]
    assert mailbox_subject("actorio", "t", "alice") == "actorio.mailbox.t.9.alice"
    assert {shard_of(f"k{i}", 8) for i in range(200)} == set(range(8))


async def test_a_key_waiting_for_its_retry_holds_up_no_other_key_of_its_shard(
    pair: tuple[Node, Node],
) -> None:
    hosting, client = pair
    host = await hosting.host(Ledger, name="ledger8", durable=FAST, lease=LEASE)
    assert shard_of("stuck", 64) == shard_of("k73", 64)  # one shard, so one consumer and one pump
    stuck, other = client.entity("ledger8", "stuck", Ledger), client.entity("ledger8", "k73", Ledger)
    await stuck.tell(Put(seq=1, fail=True))
    await stuck.tell(Put(seq=2))
    for seq in range(1, 4):
        await other.tell(Put(seq=seq))
    assert await other.ask(Seen(), timeout=20) == [1, 2, 3]
    assert await stuck.ask(Seen(), timeout=20) == [2]  # stored after 2, handled after it
    assert Ledger.HANDLED["stuck"] == [1, 1, 1, 2]  # 2 waited for 1's retries, then its dead letter
    assert list(host.activations) == [str(shard_of("stuck", 64))]  # the shard is what is placed


async def test_subjects_naming_no_key_of_their_shard_are_dead_lettered(
    nats_url: str, pair: tuple[Node, Node]
) -> None:
    hosting, client = pair
    host = await hosting.host(Ledger, name="ledger9", durable=FAST, lease=LEASE)
    assert host.durable is not None
    raw = await nats.connect(nats_url)
    try:
        js = raw.jetstream()
        body = json.dumps({"type": "Put", "data": {"seq": 1}}).encode()
        wrong = (shard_of("alice", 64) + 1) % 64
        forged = [
            f"actorio.mailbox.ledger9.{wrong}.alice",  # a key of another shard
            "actorio.mailbox.ledger9.9.alice.more",  # more tokens
            "actorio.mailbox.ledger9.09.alice",  # not a shard's number as written
            "actorio.mailbox.ledger9.64.alice",  # no such shard
            "actorio.mailbox.ledger9.alice",  # the layout of a key without its shard
        ]
        for subject in forged:
            await js.publish(subject, body)
        await client.entity("ledger9", "alice", Ledger).tell(Put(seq=2))

        async def all_dropped() -> bool:
            return len(dead_letters.of(reason="invalid")) >= len(forged)

        await wait_until(all_dropped, 4 * LEASE + 10)
        dropped = dead_letters.of(reason="invalid")
        assert sorted(letter.recipient for letter in dropped) == sorted(
            f"ledger9/{subject.rsplit('.', 1)[-1]}" for subject in forged
        )
        assert {str(letter.error) for letter in dropped} >= {
            f"the subject {forged[0]!r} names no valid entity key of shard {wrong}"
        }
        assert Ledger.HANDLED["alice"] == [2]
        assert await host.durable.dead_letters() == []

        async def settled() -> bool:  # (an acknowledgement comes after the handler: waited for)
            return (await js.stream_info(mailbox_stream("actorio", "ledger9"))).state.messages == 0

        await wait_until(settled, 10)
    finally:
        await raw.close()


async def test_forged_subjects_do_not_hold_up_the_scan(nats_url: str, pair: tuple[Node, Node]) -> None:
    """Dropping forged subjects' messages waits on the server: a scan leaves it to a task of its
    own, fetches as many as it found (no wait for one more), and returns, so the next scans go
    on waking shards. (Each forged subject held a scan a second at least: 30 of them, 30 s.)"""
    hosting, _ = pair
    host = await hosting.host(Ledger, name="ledger13", durable=FAST, lease=LEASE)
    assert host.durable is not None
    raw = await nats.connect(nats_url)
    try:
        js = raw.jetstream()
        forged = [f"actorio.mailbox.ledger13.x{i}.k" for i in range(30)]
        for subject in forged:
            await js.publish(subject, b"junk")
        await asyncio.wait_for(host.durable.scan(), 10)

        async def all_dropped() -> bool:
            return len(dead_letters.of(reason="invalid")) >= len(forged)

        await wait_until(all_dropped, 20)
        assert {letter.recipient for letter in dead_letters.of(reason="invalid")} == {"ledger13/k"}
        stream = mailbox_stream("actorio", "ledger13")
        assert (await js.stream_info(stream)).state.messages == 0
        assert await host.durable.dead_letters() == []
    finally:
        await raw.close()


async def test_a_stored_subject_that_is_not_utf8_is_terminated_and_the_shard_goes_on(
    nats_url: str, pair: tuple[Node, Node]
) -> None:
    """A message stored under a subject nats-py cannot read (another client's bytes) is dropped
    by the node's client as it arrives and terminated, not delivered again; the owner of its
    shard keeps reading and serving the shard's keys."""
    from tests.nats.test_nats_hostile import raw_publish

    hosting, client = pair
    host = await hosting.host(Ledger, name="ledgerU", durable=FAST, lease=LEASE)
    assert host.durable is not None
    shard = shard_of("alice", 64)
    poison = f"actorio.mailbox.ledgerU.{shard}.".encode() + b"\xff\xfe"
    await asyncio.to_thread(
        raw_publish, nats_url, poison, json.dumps({"type": "Put", "data": {"seq": 1}}).encode()
    )
    await client.entity("ledgerU", "alice", Ledger).tell(Put(seq=2))
    assert await client.entity("ledgerU", "alice", Ledger).ask(Seen(), timeout=4 * LEASE + 10) == [2]
    raw = await nats.connect(nats_url)
    try:
        js = raw.jetstream()

        async def settled() -> bool:
            return (await js.stream_info(mailbox_stream("actorio", "ledgerU"))).state.messages == 0

        await wait_until(settled, 4 * LEASE + 10)
    finally:
        await raw.close()
    assert Ledger.HANDLED["alice"] == [2]


async def test_every_host_of_a_type_has_its_number_of_shards(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    await hosting.host(Ledger, name="ledger10", durable=Durable(shards=8), lease=LEASE)
    with pytest.raises(ValueError, match="has 8 shards"):
        await client.host(Ledger, name="ledger10", durable=True, lease=LEASE)
    with pytest.raises(ValueError, match="shards"):
        Durable(shards=0)
    ref = client.entity("ledger10", "a", Ledger)  # a sender reads the number from the stream
    await ref.tell(Put(seq=1))
    assert await ref.ask(Seen(), timeout=20) == [1]
    js = client.client.jetstream()

    async def both_acknowledged() -> bool:  # an ask's message is acknowledged after its reply
        info = await js.stream_info(mailbox_stream("actorio", "ledger10"), subjects_filter=">")
        return info.state.messages == 0

    await wait_until(both_acknowledged, 10)
    assert shard_of("a", 8) < 8


async def test_a_request_to_a_durable_type_s_core_subject_is_refused(pair: tuple[Node, Node]) -> None:
    hosting, client = pair
    await hosting.host(Ledger, name="ledger11", durable=FAST, lease=LEASE)
    subject = f"actorio.entity.ledger11.{hosting.node_id}.alice"
    body = json.dumps({"type": "Seen", "data": {}}).encode()
    reply = await client.client.request(subject, body, headers={"Actorio-Lease": "0"}, timeout=10)
    assert b"not a shard" in reply.data
    assert "alice" not in Ledger.HANDLED


async def test_a_tell_to_a_durable_type_s_core_subject_is_a_dead_letter(pair: tuple[Node, Node]) -> None:
    # Wakes are empty: a tell with a payload on a shard's core subject was not stored, so it is
    # not handled, and it is recorded as refused rather than dropped unseen.
    hosting, client = pair
    letters: list[DeadLetter] = []
    dead_letters.add_listener(letters.append)
    await hosting.host(Ledger, name="ledger12", durable=FAST, lease=LEASE)
    ref = client.entity("ledger12", "alice", Ledger)
    await ref.tell(Put(seq=1))
    assert await ref.ask(Seen(), timeout=20) == [1]  # its shard active
    shard = shard_of("alice", 64)
    subject = f"actorio.entity.ledger12.{hosting.node_id}.{shard}"
    body = json.dumps({"type": "Put", "data": {"seq": 2}}).encode()
    await client.client.publish(subject, body, headers={"Actorio-Lease": "0"})

    async def recorded() -> bool:
        return any(letter.recipient == f"ledger12/{shard}" for letter in letters)

    await wait_until(recorded, 10)
    (letter,) = [letter for letter in letters if letter.recipient == f"ledger12/{shard}"]
    assert letter.reason == "invalid"
    assert "core subject" in str(letter.error)
    assert await ref.ask(Seen(), timeout=20) == [1]


class Late(Ledger):
    """A ledger whose first ``FAILS`` constructions raise (its factory fails, then recovers)."""

    FAILS: ClassVar[int] = 0

    def __init__(self, key: str) -> None:
        if Late.FAILS > 0:
            Late.FAILS -= 1
            raise RuntimeError("not yet")
        super().__init__(key)


async def test_a_key_whose_entity_cannot_start_keeps_its_message_past_the_delivery_limit(
    pair: tuple[Node, Node],
) -> None:
    # Failed starts are not deliveries: more of them than twice max_deliver (3 here) neither
    # dead-letters the message nor loses it; it is handled once the entity starts.
    hosting, client = pair
    Late.FAILS = 8
    letters: list[DeadLetter] = []
    dead_letters.add_listener(letters.append)
    await hosting.host(Late, name="late1", durable=FAST, lease=LEASE)
    ref = client.entity("late1", "k", Late)
    await ref.tell(Put(seq=1))
    assert await ref.ask(Seen(), timeout=30) == [1]
    assert Late.FAILS == 0
    assert Ledger.HANDLED["k"] == [1]
    assert not [letter for letter in letters if letter.recipient.startswith("late1")]


async def test_asyncio_s_timeout_from_a_batch_fetch_is_an_empty_fetch(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-py's batch fetch can raise asyncio's TimeoutError, not its own: on Python 3.10 that is
    # no OSError either, and it ended the shard's pump (its keys then waited forever).
    hosting, client = pair
    original = JetStreamContext.PullSubscription.fetch
    raised = 0

    async def fetch(self: JetStreamContext.PullSubscription, *args: Any, **kwargs: Any) -> list[Msg]:
        nonlocal raised
        if raised < 2:
            raised += 1
            raise asyncio.TimeoutError
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    await hosting.host(Ledger, name="ledger11", durable=FAST, lease=LEASE)
    ref = client.entity("ledger11", "t", Ledger)
    await ref.tell(Put(seq=1))
    assert await ref.ask(Seen(), timeout=20) == [1]
    assert raised == 2


async def moved_seqs(host: EntityHost) -> list[int]:
    """The seqs of the `Put`s in the type's dead-letter stream (0 for an ask), all moved for a
    key that could not start."""
    assert host.durable is not None
    stored = await host.durable.dead_letters(limit=None)
    assert {letter.error_type for letter in stored} <= {"EntityNotStarted"}
    return [json.loads(letter.data)["data"].get("seq", 0) for letter in stored]


async def handled_or_moved(host: EntityHost, key: str, expected: list[int]) -> tuple[list[int], list[int]]:
    """Once each of ``expected`` (seqs of ``key``'s messages) is handled or moved: each is one or
    the other, once, and those handled were handled in order. (handled, moved)."""

    async def settled() -> bool:
        return len(Ledger.HANDLED.get(key, [])) + len(await moved_seqs(host)) >= len(expected)

    await wait_until(settled, 40)
    handled, gone = Ledger.HANDLED.get(key, []), await moved_seqs(host)
    assert handled == sorted(set(handled))  # once each, in order
    assert sorted(handled + gone) == sorted(expected)  # nothing lost, nothing twice
    return handled, gone


class Broken(Ledger):
    """A ledger whose keys in ``BROKEN`` cannot start, and whose keys in ``FAILS`` fail that many
    starts first (their factory raises)."""

    BROKEN: ClassVar[set[str]] = set()
    FAILS: ClassVar[dict[str, int]] = {}

    def __init__(self, key: str) -> None:
        if key in Broken.BROKEN:
            raise RuntimeError(f"{key} cannot start")
        if Broken.FAILS.get(key, 0) > 0:
            Broken.FAILS[key] -= 1
            raise RuntimeError(f"{key} cannot start yet")
        super().__init__(key)


async def test_keys_that_cannot_start_hold_at_most_half_a_full_shard(pair: tuple[Node, Node]) -> None:
    # One key whose entity cannot start is told more messages than the shard's pump holds
    # (MAX_ACK_PENDING), an ask among them. Once the pump is full of them, the newest half of it
    # goes to the dead-letter stream (the ask answered with the error) and the pump fetches
    # again: another key of the shard is served, and a key whose start fails once meanwhile
    # loses nothing. Without the limit the shard stopped, the other keys with it.
    hosting, client = pair
    Broken.BROKEN, Broken.FAILS = {"stuck"}, {}
    letters: list[DeadLetter] = []
    dead_letters.add_listener(letters.append)
    host = await hosting.host(Broken, name="broken1", durable=FAST, lease=LEASE)
    assert host.durable is not None
    shard = shard_of("stuck", 64)
    flaky = next(key for key in (f"f{i}" for i in range(10_000)) if shard_of(key, 64) == shard)
    assert shard_of("k73", 64) == shard
    stuck, other = client.entity("broken1", "stuck", Broken), client.entity("broken1", "k73", Broken)
    js = client.client.jetstream()

    def stored_messages(count: int) -> Callable[[], Awaitable[bool]]:
        async def stored() -> bool:
            return (await js.stream_info(mailbox_stream("actorio", "broken1"))).state.messages >= count

        return stored

    # Stream positions 1..612: Puts 1..399, the ask (400), Puts 400..611.
    asked: asyncio.Task[list[int]] | None = None
    for seq in range(1, MAX_ACK_PENDING + 100):
        if seq == 400:
            asked = asyncio.create_task(stuck.ask(Seen(), timeout=60))
            await wait_until(stored_messages(400), 20)  # the ask stored before the next tell
        await stuck.tell(Put(seq=seq))
    await other.tell(Put(seq=1))
    assert await other.ask(Seen(), timeout=30) == [1]

    first = MAX_ACK_PENDING - stuck_limit()  # positions 257..512: the newest half of a full pump

    async def first_moved() -> bool:
        return len(await moved_seqs(host)) >= first

    await wait_until(first_moved, 30)
    assert asked is not None
    with pytest.raises(Exception, match="EntityNotStarted"):
        await asked  # the ask, at position 400, was in the first half moved: answered
    assert "stuck cannot start" in (await host.durable.dead_letters(limit=1))[0].error

    Broken.FAILS[flaky] = 1  # one failed start, while the stuck key holds its half: nothing lost
    for seq in range(1, 4):
        await client.entity("broken1", flaky, Broken).tell(Put(seq=seq))
    assert await client.entity("broken1", flaky, Broken).ask(Seen(), timeout=30) == [1, 2, 3]

    Broken.BROKEN = set()  # it starts at its next try, and handles what it kept, in order
    handled, gone = await handled_or_moved(host, "stuck", [0, *range(1, MAX_ACK_PENDING + 100)])
    assert handled[: stuck_limit()] == list(range(1, stuck_limit() + 1))  # the oldest half kept
    assert set(range(stuck_limit() + 1, 400)) | {0} | set(range(400, MAX_ACK_PENDING)) <= set(gone)
    assert await stuck.ask(Seen(), timeout=30) == handled
    overflow = [letter for letter in letters if letter.recipient == "broken1/stuck"]
    assert len(overflow) == len(gone)
    assert {letter.reason for letter in overflow} == {"overflow"}
    assert isinstance(overflow[0].error, DeliveryLimitReached)
    assert isinstance(overflow[0].error.__cause__, RuntimeError)


@pytest.mark.parametrize("fails", [1, 8], ids=["fails-once", "fails-for-a-while"])
async def test_a_key_whose_start_fails_a_while_with_a_full_pump_loses_nothing(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch, fails: int
) -> None:
    # A key with a backlog larger than the pump whose entity fails some starts, then starts.
    # Failing once, it is not stuck: nothing is moved, every message is handled, in order.
    # Failing more than max_deliver (3) times, it is, and its newest messages go to the
    # dead-letter stream, whose first 50 moves are refused, and only once the key started and
    # handled what it kept: those are given back, and the key's later messages wait for them
    # (they were lost: handled past, then acknowledged as copies). Each message is handled once,
    # in order, or moved.
    from actorio.nats._dead_letter_stream import DeadLetterStreams

    move = DeadLetterStreams.move
    tried: list[int] = []

    async def kept_handled() -> bool:
        return len(Ledger.HANDLED.get("backlog", [])) >= stuck_limit()

    async def refusing_at_first(self: DeadLetterStreams, msg: Msg, *args: Any, **kwargs: Any) -> int:
        tried.append(msg.metadata.sequence.stream)
        if len(tried) > 50:
            return await move(self, msg, *args, **kwargs)
        await wait_until(kept_handled, 30)
        return 0

    async def stuck() -> bool:
        return bool(tried)

    monkeypatch.setattr(DeadLetterStreams, "move", refusing_at_first)
    hosting, client = pair
    # Failing for a while: until it is stuck (its pump full), however long the tells take to
    # arrive; a fixed number of failures could all be over before the pump filled.
    Broken.BROKEN, Broken.FAILS = ({"backlog"}, {}) if fails > 1 else (set(), {"backlog": fails})
    host = await hosting.host(Broken, name=f"backlog{fails}", durable=FAST, lease=LEASE)
    assert host.durable is not None
    ref = client.entity(f"backlog{fails}", "backlog", Broken)
    told = MAX_ACK_PENDING + 100
    for seq in range(1, told + 1):
        await ref.tell(Put(seq=seq))
    if fails > 1:
        await wait_until(stuck, 30)
        Broken.BROKEN = set()  # it starts at its next try

    handled, _ = await handled_or_moved(host, "backlog", list(range(1, told + 1)))
    assert await ref.ask(Seen(), timeout=30) == handled
    assert bool(tried) == (fails > 1)  # only a stuck key's messages are moved


async def _a_stuck_key_filling_its_pump(
    hosting: Node, client: Node, name: str
) -> Callable[[], ShardKey | None]:
    """The type ``name`` (`Broken`) hosted durably, its key ``stuck`` told `MAX_ACK_PENDING`
    messages, which fill its shard's pump while it fails to start: once it failed three starts
    and holds them all (but one, maybe being retried), the key's state as its pump has it."""
    Broken.BROKEN, Broken.FAILS = {"stuck"}, {}
    host = await hosting.host(Broken, name=name, durable=FAST, lease=LEASE)
    shard = str(shard_of("stuck", 64))
    stuck = client.entity(name, "stuck", Broken)
    for seq in range(1, MAX_ACK_PENDING + 1):
        await stuck.tell(Put(seq=seq))

    def key() -> ShardKey | None:
        assert host.durable is not None
        pump = host.durable.pumps.get(shard)
        return None if pump is None else pump.keys.get("stuck")

    async def full_and_stuck() -> bool:
        found = key()
        return found is not None and found.failed_starts >= 3 and len(found.waiting) >= MAX_ACK_PENDING - 1

    await wait_until(full_and_stuck, 30)
    return key


async def test_a_full_pump_of_a_stuck_key_makes_room_though_the_wake_of_what_follows_is_lost(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stuck key fills the pump exactly (nothing more stored then), then another key of the
    # shard is told and asked with its wakes lost: the pump, full, asks the server whether
    # messages wait behind it, and makes room. (A flag set by the last fetch or a wake left
    # the shard stopped.)
    from actorio.nats._durable_entities import DurableSending

    hosting, client = pair
    await _a_stuck_key_filling_its_pump(hosting, client, "behind1")
    other = client.entity("behind1", "k73", Broken)
    monkeypatch.setattr(DurableSending, "wake_soon", lambda self, entity_type, shard: None)
    await other.tell(Put(seq=1))
    assert await other.ask(Seen(), timeout=30) == [1]


async def test_a_full_pump_of_a_stuck_key_asks_the_server_once_a_poll_not_at_each_failed_start(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stuck key fills the pump and nothing waits behind it: whether something does is asked
    # of the server when the pump polls (once a second here) or is woken, not at each of the
    # key's failed starts (five a second here): 64 shards of stuck keys would flood the server.
    hosting, client = pair
    key = await _a_stuck_key_filling_its_pump(hosting, client, "behind2")

    def failed_starts() -> int:
        found = key()
        assert found is not None
        return found.failed_starts

    asked: list[int] = []
    more_behind = ShardPump._more_behind

    async def counted(self: ShardPump) -> bool:
        asked.append(failed_starts())
        return await more_behind(self)

    monkeypatch.setattr(ShardPump, "_more_behind", counted)
    first = failed_starts()

    async def failed_twenty_more() -> bool:
        return failed_starts() >= first + 20

    await wait_until(failed_twenty_more, 60)
    assert 1 <= len(asked) <= 10, asked  # about one a second: not one a failed start
    assert len(getattr(key(), "waiting", {})) == MAX_ACK_PENDING  # nothing was moved: no other key needs room


async def test_a_move_that_ends_past_the_lease_leaves_the_message_to_the_next_owner(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The moves of a stuck key's messages take longer than the lease; meanwhile the key is
    # cured and its node closes (its lease no longer renewed). A move that ends past the fence
    # deletes the letter it stored and leaves the message to the next owner, which handles
    # it: each message is handled or moved, never both. (The letter stayed, and was handled.)
    from actorio.nats._dead_letter_stream import DeadLetterStreams

    Ledger.HANDLED.clear()
    move = DeadLetterStreams.move
    tried: list[int] = []

    async def slow(self: DeadLetterStreams, msg: Msg, *args: Any, **kwargs: Any) -> int:
        tried.append(msg.metadata.sequence.stream)
        await asyncio.sleep(1.5 * LEASE)  # a move slower than the lease: a pause, bounded
        return await move(self, msg, *args, **kwargs)

    monkeypatch.setattr(DeadLetterStreams, "move", slow)
    Broken.BROKEN, Broken.FAILS = {"stuck"}, {}
    async with await Node.connect(nats_url) as b, await Node.connect(nats_url) as client:
        a = await Node.connect(nats_url)
        try:
            await a.host(Broken, name="fenced1", durable=FAST, lease=LEASE)
            stuck = client.entity("fenced1", "stuck", Broken)
            told = MAX_ACK_PENDING + 99
            for seq in range(1, told + 1):
                await stuck.tell(Put(seq=seq))

            async def moving() -> bool:
                return bool(tried)

            await wait_until(moving, 30)
            Broken.BROKEN = set()
            host_b = await b.host(Broken, name="fenced1", durable=FAST, lease=LEASE)
        finally:
            await a.close()
        await client.entity("fenced1", "k73", Broken).tell(Put(seq=1))  # B takes the shard
        await handled_or_moved(host_b, "stuck", list(range(1, told + 1)))


async def test_a_copy_of_a_moved_message_whose_term_was_lost_is_neither_handled_nor_moved_again(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The moves' terms are lost: the server delivers the moved messages again after ack_wait
    # (the lease). The pump knows them as moved: the copies are acknowledged, not handled once
    # the key is cured, nor moved (or answered) again.
    hosting, client = pair
    terms_lost: list[int] = []

    async def lost(self: Msg) -> None:
        terms_lost.append(self.metadata.sequence.stream)

    monkeypatch.setattr(Msg, "term", lost)
    Broken.BROKEN, Broken.FAILS = {"stuck"}, {}
    host = await hosting.host(Broken, name="lostterm1", durable=FAST, lease=LEASE)
    assert host.durable is not None
    stuck = client.entity("lostterm1", "stuck", Broken)
    told = MAX_ACK_PENDING + 99
    for seq in range(1, told + 1):
        await stuck.tell(Put(seq=seq))
    js = client.client.jetstream()
    stream, consumer = mailbox_stream("actorio", "lostterm1"), f"shard-{shard_of('stuck', 64)}"

    async def copies_delivered() -> bool:  # at least one moved message delivered again
        return bool(terms_lost) and (await js.consumer_info(stream, consumer)).num_redelivered > 0

    await wait_until(copies_delivered, 30)
    Broken.BROKEN = set()

    await handled_or_moved(host, "stuck", list(range(1, told + 1)))
