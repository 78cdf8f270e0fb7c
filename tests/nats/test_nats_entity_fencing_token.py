"""The fencing token an entity reads (`fencing_token`), on a real nats-server: the claim revision
of its activation's lease, unchanged by renewals, larger for each later activation of the key,
on this node or another after a ``kill -9`` of its host."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from actorio import Actor, Message, handles
from actorio.nats import Node, fencing_token
from tests.nats_support.ledger_worker import Ledger, Token, Where
from tests.nats_support.processes import Worker, wait_until, worker

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE = 2.0

TOKENS: list[tuple[str, int]] = []


class Read(Message[int]):
    pass


class Teller(Actor[Read]):
    """Answers its fencing token; notes the one its setup and its teardown see."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    async def mainloop_setup(self) -> None:
        TOKENS.append(("setup", fencing_token()))

    async def mainloop_teardown(self) -> None:
        TOKENS.append(("teardown", fencing_token()))

    @handles(Read)
    async def read(self, msg: Read) -> int:
        return fencing_token()


@pytest_asyncio.fixture
async def pair(nats_url: str) -> AsyncIterator[tuple[Node, Node]]:
    host = await Node.connect(nats_url, ask_timeout=10.0)
    client = await Node.connect(nats_url, ask_timeout=10.0)
    try:
        yield host, client
    finally:
        await client.close()
        await host.close()


async def test_outside_an_entity_there_is_no_token() -> None:
    with pytest.raises(LookupError, match="fencing_token"):
        fencing_token()


async def test_the_token_is_the_claim_revision_and_a_renewal_keeps_it(pair: tuple[Node, Node]) -> None:
    TOKENS.clear()
    node, client = pair
    host = await node.host(Teller, name="token1", lease=LEASE)
    ref = client.entity("token1", "t", Teller)
    token = await ref.ask(Read())
    owner = await host.placements.lookup("t")
    assert owner is not None
    assert token == owner.claim
    assert [("setup", token)] == TOKENS

    async def renewed() -> bool:
        lease = host.activations["t"].lease
        assert lease is not None
        return lease.revision > token  # a renewal wrote a new revision of the entry

    await wait_until(renewed, 10.0)
    assert await ref.ask(Read()) == token  # the renewal did not change the token
    with pytest.raises(LookupError):
        fencing_token()  # the test's own task is not the entity's


async def test_each_activation_of_a_key_has_a_larger_token(pair: tuple[Node, Node]) -> None:
    TOKENS.clear()
    node, client = pair
    await node.host(Teller, name="token2", lease=LEASE, max_active=1)
    first = await client.entity("token2", "a", Teller).ask(Read())
    other = await client.entity("token2", "b", Teller).ask(Read())  # "a" is passivated for it
    again = await client.entity("token2", "a", Teller).ask(Read())  # and "b" for this one
    assert first < other < again
    assert [
        ("setup", first),
        ("teardown", first),
        ("setup", other),
        ("teardown", other),
        ("setup", again),
    ] == TOKENS


@pytest.mark.timeout(90)
async def test_a_key_moved_by_a_kill_9_has_a_larger_token(nats_url: str, tmp_path: Path) -> None:
    record = tmp_path / "record"
    prefix = f"fence{time.monotonic_ns()}"

    def host() -> contextlib.AbstractAsyncContextManager[Worker]:
        return worker(
            *("--url", nats_url, "--prefix", prefix, "--record", str(record), "--name", "fledger"),
            module="tests.nats_support.ledger_worker",
        )

    async with (
        host() as w1,
        host() as w2,
        await Node.connect(nats_url, ask_timeout=30.0) as client,
    ):
        workers = {w1.name: w1, w2.name: w2}
        ref = client.entity("fledger", "moving", Ledger)
        before = await ref.ask(Token())
        owner = workers[await ref.ask(Where())]
        owner.kill()
        after = await ref.ask(Token())  # activated again on the other host, once the lease expired
        assert await ref.ask(Where()) != owner.name
        assert after > before


async def test_a_durable_key_s_token_is_its_shard_s_claim_and_grows_with_the_shard(
    pair: tuple[Node, Node],
) -> None:
    # A durable type places shards: a key's entity runs inside its shard's activation, whose
    # claim fences it. Passivating the shard and activating it again gives a larger token.
    TOKENS.clear()
    node, client = pair
    host = await node.host(Teller, name="token4", lease=LEASE, durable=True)
    ref = client.entity("token4", "d", Teller)
    token = await ref.ask(Read())
    assert host.durable is not None
    shard = str(host.durable.shard_of("d"))
    owner = await host.placements.lookup(shard)
    assert owner is not None
    assert token == owner.claim
    activation = host.activations[shard]
    await host._passivate(activation, release=True, timeout=5.0)  # pyright: ignore[reportPrivateUsage]
    assert ("teardown", token) in TOKENS  # the key's teardown ran with its shard's token
    again = await ref.ask(Read())
    assert again > token
