"""The journal users of the example server configuration, docs/nats-worker.conf, as the file
gives them: a `JetStreamJournal` whose types its admin provisioned does all of its work within
the journal user's permissions; the tenant's other users can neither see, forge nor change what
it stores or is answered (it has an account of its own), and the journal's user can neither
remove its events nor make a stream (whose republish setting would remove them); a type nobody
provisioned says why it cannot be used; each account stays within its own storage."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import (
    KeyValueConfig,
    ObjectStoreConfig,
    PersistMode,
    RePublish,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.client import JetStreamContext

from actorio.nats._connection import synced
from actorio.persistence import (
    EventData,
    JetStreamJournal,
    PersistenceError,
    PersistenceId,
    ReminderRecord,
    SnapshotRecord,
)
from tests.nats_support.credentials import EXAMPLE_CONFIG, ShopKeys, example_server

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a-1")
EVENTS = "SHOP_EVENTS_account"
OBJECTS = "OBJ_shop_objects_account"
BIG = 2_000_000
"""Bytes of a value kept in the object store (larger than a message)."""


class Refusals:
    """What the server refused a client (its error callback: nats-py calls it for each
    permissions violation the server reports, before it reads what the server sends next)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def record(self, error: Exception) -> None:
        """The error callback."""
        self.seen.append(str(error).lower())

    def refused(self, operation: str, subject: str) -> bool:
        """Whether the server refused ``operation`` (``publish``, ``subscription``) on ``subject``."""
        return any(f'violation for {operation} to "{subject.lower()}"' in seen for seen in self.seen)


async def journal_of(
    server_url: str, keys: ShopKeys, refusals: Refusals, timeout: float = 5.0
) -> JetStreamJournal:
    """A journal signed in as the configuration's journal user, reading its answers in its inbox."""
    return await JetStreamJournal.connect(
        server_url,
        prefix="shop",
        timeout=timeout,
        nkeys_seed_str=keys.journal.seed,
        inbox_prefix="_INBOX.shop-journal",
        error_cb=refusals.record,
    )


@asynccontextmanager
async def admin_on_example() -> AsyncIterator[JetStreamJournal]:
    """A server running the example configuration, and a journal signed in as its journal admin
    (every right in the journal's account)."""
    keys = ShopKeys.make()
    with example_server(keys) as server:
        async with await admin_of(server.url, keys) as admin:
            yield admin


async def admin_of(server_url: str, keys: ShopKeys) -> JetStreamJournal:
    """A journal signed in as the configuration's journal admin."""
    return await JetStreamJournal.connect(server_url, prefix="shop", nkeys_seed_str=keys.journal_admin.seed)


async def provision(server_url: str, keys: ShopKeys) -> None:
    """What an operator does once, as the journal's admin: the snapshots bucket made as other
    NATS clients make buckets (direct reads allowed), then every stream and bucket of the type."""
    async with await admin_of(server_url, keys) as admin:
        js = admin.client.jetstream()
        await js.create_key_value(KeyValueConfig(bucket="shop_snapshots_account", history=1, direct=True))
        await admin.provision("account")


def events(count: int, size: int = 8) -> list[EventData]:
    return [EventData("e", 1, b'"%s"' % (b"x" * size)) for _ in range(count)]


async def consumers(journal: JetStreamJournal, stream: str) -> int:
    """How many consumers the stream has (the journal's user may ask for a stream's info)."""
    return (await journal.client.jetstream().stream_info(stream)).state.consumer_count


async def chunks(journal: JetStreamJournal) -> dict[str, int]:
    """The subjects holding objects' chunks in the type's object store."""
    info = await journal.client.jetstream().stream_info(OBJECTS, subjects_filter="$O.*.C.>")
    return info.state.subjects or {}


async def every_kind_of_work(journal: JetStreamJournal) -> None:
    """What a journal does for an entity type: append and read events (a history long enough to
    need the reads' flow control), snapshots, states and reminders (small, and larger than a
    message: in the object store, an object replaced then removed), and the ids' listing."""
    last = await journal.last_sequence(ACCOUNT)
    for _ in range(6):  # 60 events of 60 KB: a read of 3.6 MB stalls without flow control
        last = await journal.append(ACCOUNT, last, events(10, 60_000))
    assert [r.sequence async for r in journal.read(ACCOUNT)] == list(range(1, last + 1))
    assert [r.sequence async for r in journal.read(ACCOUNT, last - 1)] == [last]

    await journal.save_snapshot(SnapshotRecord(ACCOUNT, last, 1, b'{"total":1}'))
    snapshot = await journal.load_snapshot(ACCOUNT)
    assert snapshot is not None
    assert snapshot.sequence == last

    stored = await journal.load_state(ACCOUNT)
    revision = stored.revision if stored is not None else 0
    revision = await journal.save_state(ACCOUNT, revision, 1, b'{"a":1}')
    revision = await journal.save_state(ACCOUNT, revision, 1, b'"%s"' % (b"s" * BIG))
    stored = await journal.load_state(ACCOUNT)
    assert stored is not None
    assert len(stored.payload) == BIG + 2
    await journal.save_state(ACCOUNT, revision, 1, b'{"a":2}')  # the object is removed

    due = time.time() + 3600
    await journal.save_reminder(ReminderRecord(ACCOUNT, "small", due, b"{}"))
    await journal.save_reminder(ReminderRecord(ACCOUNT, "large", due, b'"%s"' % (b"r" * BIG)))
    assert sorted(r.name for r in await journal.load_reminders(ACCOUNT)) == ["large", "small"]
    await journal.delete_reminder(ACCOUNT, "small")
    await journal.delete_reminder(ACCOUNT, "large")  # its object too
    assert await journal.load_reminders(ACCOUNT) == []

    assert await journal.persistence_ids() == [ACCOUNT]
    # Every read removed its consumer, and the objects of replaced values were removed.
    assert await consumers(journal, EVENTS) == await consumers(journal, OBJECTS) == 0
    assert await chunks(journal) == {}


async def test_a_provisioned_journal_does_all_its_work_within_the_example_permissions() -> None:
    keys, refusals = ShopKeys.make(), Refusals()
    with example_server(keys) as server:
        await provision(server.url, keys)
        async with await journal_of(server.url, keys, refusals) as journal:
            await every_kind_of_work(journal)
            await every_kind_of_work(journal)  # (where there is something to replace and read)
    assert refusals.seen == []


async def test_no_user_of_the_example_can_forge_change_or_remove_what_the_journal_stores() -> None:
    keys, refusals = ShopKeys.make(), Refusals()
    with example_server(keys) as server:
        await provision(server.url, keys)
        async with await journal_of(server.url, keys, refusals) as journal:
            # A worker may subscribe and publish under the tenant's prefix and answer inboxes, and
            # the tenant's admin may do anything: all in their own account, where the journal is not.
            worker: Client = await nats.connect(
                server.url, nkeys_seed_str=keys.worker.seed, inbox_prefix="_INBOX.shop-worker"
            )
            tenant_admin: Client = await nats.connect(server.url, nkeys_seed_str=keys.admin.seed)
            try:
                appends = await worker.subscribe("shop.events.>")
                await synced(worker)
                assert await journal.append(ACCOUNT, 0, events(2)) == 2
                await synced(worker)  # what the server routed to it came before its PONG
                assert appends.pending_msgs == 0  # it never saw an append, nor its reply subject
                await worker.publish("shop.events.account.a-1", b'{"forged":true}')  # not stored
                stealthy = StreamConfig(name=EVENTS, subjects=["shop.events.account.*"], max_age=1.0)
                with pytest.raises(nats.js.errors.NotFoundError):
                    await tenant_admin.jetstream().update_stream(stealthy)
            finally:
                await worker.close()
                await tenant_admin.close()

            # The journal's own user may write its events, not remove them: neither by the API
            # nor through a stream of its own, or its own made anew, republishing to the API.
            trap = {
                "name": "TRAP",
                "subjects": ["shop.events.trap.*"],
                "republish": {"src": ">", "dest": f"$JS.API.STREAM.PURGE.{EVENTS}"},
            }
            attempts = {
                f"$JS.API.STREAM.DELETE.{EVENTS}": {},
                f"$JS.API.STREAM.PURGE.{EVENTS}": {},
                f"$JS.API.STREAM.MSG.DELETE.{EVENTS}": {"seq": 1},
                "$JS.API.STREAM.CREATE.TRAP": trap,
                f"$JS.API.STREAM.UPDATE.{EVENTS}": {**trap, "name": EVENTS},
            }
            for subject, body in attempts.items():
                await journal.client.publish(subject, json.dumps(body).encode())
            await journal.client.subscribe("shop.events.>")
            await synced(journal.client)
            for subject in attempts:
                assert refusals.refused("publish", subject), subject
            assert refusals.refused("subscription", "shop.events.>")

            assert [(r.sequence, r.name) async for r in journal.read(ACCOUNT)] == [(1, "e"), (2, "e")]
            info = await journal.client.jetstream().stream_info(EVENTS)
            assert info.state.messages == 1  # the batch of two, and nothing forged


async def test_a_type_nobody_provisioned_cannot_be_used_and_says_why() -> None:
    keys, refusals = ShopKeys.make(), Refusals()
    cart = PersistenceId("cart", "c-1")
    with example_server(keys) as server:
        async with await journal_of(server.url, keys, refusals, timeout=1.0) as journal:
            with pytest.raises(PersistenceError, match="SHOP_EVENTS_cart: could not make the stream"):
                await journal.last_sequence(cart)
            with pytest.raises(
                PersistenceError, match=r"could not be made or checked .*; nothing was written"
            ):
                await journal.save_state(cart, 0, 1, b"{}")
            with pytest.raises(PersistenceError, match="shop_snapshots_cart: could not be made or checked"):
                await journal.load_snapshot(cart)
    assert refusals.refused("publish", "$JS.API.STREAM.CREATE.SHOP_EVENTS_cart")
    assert refusals.refused("publish", "$JS.API.STREAM.CREATE.KV_shop_states_cart")


async def events_stream(js: JetStreamContext, **settings: Any) -> None:
    await js.add_stream(StreamConfig(name=EVENTS, subjects=["shop.events.account.*"], **settings))


async def changed(js: JetStreamContext, stream: str, **settings: Any) -> None:
    """The stream, as its client made it, with ``settings`` changed."""
    config = (await js.stream_info(stream)).config
    await js.update_stream(dataclasses.replace(config, **settings))


async def states_bucket(js: JetStreamContext, **settings: Any) -> None:
    await js.create_key_value(KeyValueConfig(bucket="shop_states_account"))
    await changed(js, "KV_shop_states_account", **settings)


async def object_store(js: JetStreamContext, **settings: Any) -> None:
    await js.create_object_store("shop_objects_account")
    await changed(js, OBJECTS, **settings)


async def sourcing_events(js: JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="ELSEWHERE", subjects=["elsewhere.>"]))
    await events_stream(js, sources=[StreamSource(name="ELSEWHERE")])


PURGE = f"$JS.API.STREAM.PURGE.{EVENTS}"
UNFIT: dict[str, tuple[Callable[[JetStreamContext], Awaitable[None]], str]] = {
    "events taking rollups": (lambda js: events_stream(js, allow_rollup_hdrs=True), "allow_rollup_hdrs"),
    "events republished through a mapping": (
        lambda js: events_stream(
            js,
            republish=RePublish(
                src="shop.events.account.*", dest="{{wildcard(1)}}.API.STREAM.PURGE." + EVENTS
            ),
        ),
        r"republish to \{\{wildcard\(1\)\}\}\.API",
    ),
    "events transformed": (
        lambda js: events_stream(
            js,
            subject_transform=SubjectTransform(src="shop.events.account.*", dest="shop.old.{{wildcard(1)}}"),
        ),
        "a subject transform",
    ),
    "events sourced": (sourcing_events, "sources"),
    "events in memory": (lambda js: events_stream(js, storage=StorageType.MEMORY), "memory storage"),
    "events acknowledged before written": (
        lambda js: events_stream(js, persist_mode=PersistMode.ASYNC),
        "persist_mode async",
    ),
    "events counting": (lambda js: events_stream(js, allow_msg_counter=True), "allow_msg_counter"),
    "states republished to the API": (
        lambda js: states_bucket(
            js, republish=RePublish(src="$KV.shop_states_account.trap", dest=PURGE, headers_only=True)
        ),
        r"republish to \$JS\.API\.STREAM\.PURGE",
    ),
    "objects republished to the API": (
        lambda js: object_store(
            js, republish=RePublish(src="$O.shop_objects_account.M.trap", dest=PURGE, headers_only=True)
        ),
        r"republish to \$JS\.API\.STREAM\.PURGE",
    ),
    "objects one message a subject": (
        lambda js: object_store(js, max_msgs_per_subject=1),
        "max_msgs_per_subject 1",
    ),
}


@pytest.mark.parametrize("unfit", list(UNFIT))
async def test_a_stream_that_would_lose_or_let_remove_what_is_stored_is_refused(unfit: str) -> None:
    """Made beforehand with settings that lose what it stores (memory, a limit per subject on the
    objects' chunks), store it where the journal does not read it (a transform, sources), or let
    whoever may publish to it have the events removed (rollups, a republish to the JetStream
    API, directly or through a mapping): `provision` refuses it, as a journal's first use of it
    does, before anything is written there."""
    make, refused = UNFIT[unfit]
    async with admin_on_example() as admin:
        await make(admin.client.jetstream())
        with pytest.raises(PersistenceError, match=refused):
            await admin.provision("account")


async def test_a_stream_republishing_elsewhere_is_fit_and_an_error_about_subjects_is_bounded() -> None:
    async with admin_on_example() as admin:
        js = admin.client.jetstream()
        # A copy of each event for an audit: the journal's records stay where they are.
        audit = RePublish(src="shop.events.account.*", dest="audit.events.{{wildcard(1)}}")
        await events_stream(js, republish=audit)
        await admin.provision("account")
        # A stream of the name holding other subjects, 200 of a kilobyte each: said, bounded.
        long = [f"other.{n}.{'x' * 1000}" for n in range(200)]
        await js.add_stream(StreamConfig(name="SHOP_EVENTS_cart", subjects=long))
        with pytest.raises(PersistenceError, match="does not store the subjects") as refused:
            await admin.provision("cart")
        assert len(str(refused.value)) < 1000


async def test_provision_checks_names_first_and_looks_again_at_what_it_checked_before() -> None:
    async with admin_on_example() as admin:
        js = admin.client.jetstream()
        with pytest.raises(ValueError, match="bad type"):
            await admin.provision("account", "bad type")
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(EVENTS)  # nothing made
        await admin.provision("account")
        await js.delete_key_value("shop_states_account")
        await admin.provision("account")
        await js.stream_info("KV_shop_states_account")  # made again
        await js.delete_stream(EVENTS)
        await events_stream(js, max_age=60.0)
        with pytest.raises(PersistenceError, match="max_age 60 s"):
            await admin.provision("account")


async def test_a_write_whose_object_store_is_unfit_writes_nothing() -> None:
    async with admin_on_example() as admin:
        js = admin.client.jetstream()
        memory = ObjectStoreConfig(storage=StorageType.MEMORY)  # lost at a restart: unfit
        await js.create_object_store("shop_objects_account", memory)
        with pytest.raises(PersistenceError, match=r"shop_objects_account: .*; nothing was written"):
            await admin.save_state(ACCOUNT, 0, 1, b'"%s"' % (b"s" * BIG))
        assert await admin.load_state(ACCOUNT) is None


def limited(tmp_path: Path, account: int, size: str) -> Path:
    """The example configuration with the ``account``-th account's storage (0: the tenant's,
    1: the journal's) made ``size``."""
    parts = EXAMPLE_CONFIG.read_text().split("max_file: 20G")
    assert len(parts) == 3  # the two accounts' limits
    limits = ["20G", "20G"]
    limits[account] = size
    path = tmp_path / "limited.conf"
    path.write_text(f"{parts[0]}max_file: {limits[0]}{parts[1]}max_file: {limits[1]}{parts[2]}")
    return path


@pytest.mark.parametrize("full", ["tenant", "journal"])
async def test_each_account_stays_within_its_storage(tmp_path: Path, full: str) -> None:
    """One account fills its storage (here made 3 MB): the other still writes."""
    keys, refusals = ShopKeys.make(), Refusals()
    with example_server(keys, config=limited(tmp_path, 0 if full == "tenant" else 1, "3M")) as server:
        await provision(server.url, keys)
        tenant_admin: Client = await nats.connect(server.url, nkeys_seed_str=keys.admin.seed)
        try:
            js = tenant_admin.jetstream()
            await js.add_stream(StreamConfig(name="FILLER", subjects=["shop.filler"]))
            async with await journal_of(server.url, keys, refusals) as journal:
                if full == "tenant":
                    with pytest.raises(nats.js.errors.APIError, match="resource limits exceeded"):  # noqa: PT012
                        for _ in range(10):  # 5 MB
                            await js.publish("shop.filler", b"f" * 500_000)
                    assert await journal.append(ACCOUNT, 0, events(10, 60_000)) == 10
                else:
                    with pytest.raises(PersistenceError, match="resource limits exceeded"):  # noqa: PT012
                        for n in range(10):  # 6 MB
                            await journal.append(ACCOUNT, n * 10, events(10, 60_000))
                    assert (await js.publish("shop.filler", b"f" * 500_000)).seq == 1
        finally:
            await tenant_admin.close()
    assert refusals.seen == []


async def test_the_server_refuses_to_start_with_less_storage_than_its_accounts(tmp_path: Path) -> None:
    config = tmp_path / "short.conf"
    config.write_text(EXAMPLE_CONFIG.read_text().replace("max_file_store: 40G", "max_file_store: 30G"))
    with pytest.raises(RuntimeError, match="insufficient storage resources"):  # noqa: SIM117
        with example_server(ShopKeys.make(), config=config):
            pass
