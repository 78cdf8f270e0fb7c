"""The example server configuration, docs/nats-worker.conf, as it is: a worker and a client
of the tenant "shop" sign in with NKeys and do everything a durable pool and its clients do
(durable tells and asks, core asks, replies to a sender) once the tenant's admin provisioned the
durable name's streams, and nothing more."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js.api import KeyValueConfig

from actorio import Actor, Message, handles
from actorio.nats import Durable, Node, NotAuthorized
from actorio.nats._connection import synced
from actorio.nats._durable import stream_name
from actorio.nats._placement import bucket_name
from actorio.persistence import JetStreamJournal
from tests.nats.test_nats_persistent_entities import Arm, Fires, Sleeper
from tests.nats_support.actors import Greet, Greeter, Greeting, Record, Report
from tests.nats_support.credentials import Key, ShopKeys, example_server
from tests.nats_support.processes import wait_until
from tests.persistence.test_jetstream_permissions import provision as provision_journal


class Seeds:
    """The worker's and the client's NKey seeds; the server knows their public keys."""

    def __init__(self, keys: ShopKeys) -> None:
        self.keys = keys
        self.worker = keys.worker.seed
        self.client = keys.client.seed


@pytest.fixture
def seeds() -> Seeds:
    """Keys of the configuration's users."""
    return Seeds(ShopKeys.make())


class Inbox(Actor[Greeting]):
    """A client's local actor, sent as the sender of a message: gets the greetings told back."""

    def __init__(self) -> None:
        super().__init__()
        self.got: asyncio.Queue[str] = asyncio.Queue()

    @handles(Greeting)
    async def greeting(self, msg: Greeting) -> None:
        self.got.put_nowait(msg.text)


@pytest.mark.asyncio
async def test_a_durable_pool_and_a_client_work_within_the_example_permissions(
    seeds: Seeds, caplog: pytest.LogCaptureFixture
) -> None:
    with example_server(seeds.keys) as server:
        worker = await Node.connect(
            server.url, prefix="shop", nkey_seed=seeds.worker, inbox_prefix="_INBOX.shop-worker"
        )
        client = await Node.connect(
            server.url, prefix="shop", nkey_seed=seeds.client, inbox_prefix="_INBOX.shop-client"
        )
        # The tenant's admin provisions the durable name's streams; the worker may not make them.
        async with await Node.connect(server.url, prefix="shop", nkey_seed=seeds.keys.admin.seed) as admin:
            await admin.provision("jobs", Durable(redelivery_delay=5))
        async with worker, client:
            await worker.publish("jobs", Greeter(), durable=Durable(redelivery_delay=5))
            await worker.publish("greeter", Greeter())

            jobs = client.ref("jobs", Greeter, durable=True)
            for n in range(3):
                await jobs.tell(Record(n=n))
            assert await jobs.ask(Report(), timeout=10) == [0, 1, 2]

            greeter = client.ref("greeter", Greeter)
            reply = await greeter.ask(Greet(name="shop"), timeout=10)
            assert reply.text == "Hello shop!"
            inbox = Inbox()
            await inbox.start()
            await greeter.tell(Record(n=7, sender=inbox.reference))
            assert await asyncio.wait_for(inbox.got.get(), 10) == "recorded 7"
            await inbox.stop()

            # What the worker's user may not do: delete its stream, or leave its prefix.
            stream = stream_name("shop", "jobs")
            with caplog.at_level(logging.WARNING, logger="actorio.nats"):
                await worker.client.publish(f"$JS.API.STREAM.DELETE.{stream}", b"")
                await synced(worker.client)  # the server's -ERR comes before the PONG
            refused = f'permissions violation for publish to "$JS.API.STREAM.DELETE.{stream}"'
            assert refused.lower() in caplog.text.lower()
            assert await jobs.ask(Report(), timeout=10) == [0, 1, 2]  # the stream is still there

            # Nor make a stream (a durable name nobody provisioned), or update one (a provisioned
            # name published with other settings): either would let it purge and delete any
            # stream of its account (a republish to the JetStream API).
            with pytest.raises(
                ValueError,
                match=r"there is no stream SHOP_OTHER_\w+, and it could not be made \(nats: permissions "
                r'violation for publish to "\$js\.api\.stream\.create\.shop_other_\w+"\)',
            ):
                await worker.publish("other", Greeter(), durable=True)
            with pytest.raises(
                ValueError,
                match=r"\(duplicate_window 120\.0 \(wanted 60\)\), and it could not be updated \(nats: "
                r'permissions violation for publish to "\$js\.api\.stream\.update\.shop_jobs_\w+"\)',
            ):
                await worker.publish("jobs", Greeter(), durable=Durable(dedupe_window=60))
            assert await jobs.ask(Report(), timeout=10) == [0, 1, 2]  # (the pool goes on)

            # What the client's user may not do: publish an actor. Refused by the server, and
            # publish() says so rather than return with nobody subscribed.
            with pytest.raises(PermissionError, match=r"refused the subscription to 'shop\.actor\.impostor'"):
                await client.publish("impostor", Greeter())

        # Outside its prefix, a node cannot even subscribe to its own addresses.
        with pytest.raises(NotAuthorized, match=r"refused the subscription to 'bank\.node\."):
            await Node.connect(server.url, prefix="bank", nkey_seed=seeds.client)
        # A key the server does not know.
        with pytest.raises(NotAuthorized, match="refused the credentials"):
            await Node.connect(server.url, prefix="shop", nkey_seed=Key.make().seed)


class Deposit(Message):
    amount: int


class Balance(Message[int]):
    pass


class Wallet(Actor[Deposit | Balance]):
    """An entity: one per key."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.balance = 0

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        self.balance += msg.amount

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return self.balance


class AccountSleeper(Sleeper):
    """A persistent entity whose reminder counts in its state, in the journal's type "account"."""

    entity_type = "account"


@pytest.mark.asyncio
async def test_entity_types_work_within_the_example_permissions(
    seeds: Seeds, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain, durable and persistent entity types, provisioned by the tenant's admin (and the
    journal's by its admin), hosted by a worker and used by a client, with no refusal."""
    keys = seeds.keys
    with example_server(keys) as server, caplog.at_level(logging.WARNING, logger="actorio.nats"):
        await provision_journal(server.url, keys)
        async with await Node.connect(server.url, prefix="shop", nkey_seed=keys.admin.seed) as admin:
            # Wallet's bucket made as other NATS clients make buckets: direct reads allowed, which
            # need a right nobody here has; the nodes read through the stream's leader.
            bucket = KeyValueConfig(bucket=bucket_name("shop", "Wallet"), ttl=10.0, history=1, direct=True)
            await admin.client.jetstream().create_key_value(bucket)
            await admin.provision_entities("Wallet", lease=10.0)
            await admin.provision_entities("DurableWallet", lease=10.0, durable=True)
            await admin.provision_entities("AccountSleeper", lease=10.0, durable=True, persistent=True)
        journal = await JetStreamJournal.connect(
            server.url, prefix="shop", nkeys_seed_str=keys.journal.seed, inbox_prefix="_INBOX.shop-journal"
        )
        worker = await Node.connect(
            server.url, prefix="shop", nkey_seed=seeds.worker, inbox_prefix="_INBOX.shop-worker"
        )
        client = await Node.connect(
            server.url, prefix="shop", nkey_seed=seeds.client, inbox_prefix="_INBOX.shop-client"
        )
        async with journal, worker, client:
            await worker.host(Wallet, lease=10.0)
            await worker.host(Wallet, name="DurableWallet", lease=10.0, durable=True)
            await worker.host(AccountSleeper, journal=journal, lease=10.0, idle_timeout=0.5, durable=True)
            for name in ("Wallet", "DurableWallet"):
                wallet = client.entity(name, "alice", Wallet)
                await wallet.tell(Deposit(amount=10))
                assert await wallet.ask(Balance(), timeout=10) == 10
            sleeper = client.entity(AccountSleeper, "k1")
            await sleeper.tell(Arm(delay=0.2))  # fires after the key was passivated (idle 0.5 s)

            async def fired() -> bool:
                return await sleeper.ask(Fires(), timeout=10) == 1

            await wait_until(fired, 20)

            # The worker may not make an entity type's bucket: a type nobody provisioned.
            with pytest.raises(
                ValueError,
                match=r"there is no bucket \w+, and it could not be made \(nats: permissions violation "
                r'for publish to "\$js\.api\.stream\.create\.kv_\w+"\)',
            ):
                await worker.host(Wallet, name="Unprovisioned", lease=10.0)
        refused = [r.getMessage() for r in caplog.records if "refused an operation" in r.getMessage()]
        assert all("$js.api.stream.create" in line.lower() for line in refused), refused
