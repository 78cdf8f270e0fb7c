"""Objects of the JetStream journal's object store as hostile storage holds them: stored info the
journal never writes (a size that is no positive integer, chunks that are not there, a link, a
wrong digest) is `JournalCorrupted` at once, a read never waits longer than the journal's
timeout a chunk, and however a read ends its subscription and its consumer are gone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client

from actorio.persistence import (
    JetStreamJournal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    ReminderRecord,
    WriterConflict,
)
from actorio.persistence._jetstream_objects import read_object

from .journals import unique_prefix

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
"""A field of the stored info left out."""


async def _stored_object(nats_url: str, prefix: str) -> str:
    """Save a reminder of ``ACCOUNT`` large enough for the object store; the object's name."""
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as writer:
        await writer.save_reminder(ReminderRecord(ACCOUNT, "r", 5.0, b'"' + b"m" * 5000 + b'"'))
        entry = await (await writer.client.jetstream().key_value(f"{prefix}_reminders_account")).get("a.r")
        return (entry.value or b"").decode().split(" ", 1)[1]


async def _forge(raw: Client, prefix: str, name: str, **fields: Any) -> dict[str, Any]:
    """Rewrite fields of the object's stored info (``MISSING``: remove it); the info before."""
    js = raw.jetstream()
    stream = f"OBJ_{prefix}_objects_account"
    meta = f"$O.{prefix}_objects_account.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
    info: dict[str, Any] = json.loads((await js.get_last_msg(stream, meta)).data or b"")
    before = dict(info)
    for field, value in fields.items():
        if value is MISSING:
            del info[field]
        else:
            info[field] = value
    await js.publish(meta, json.dumps(info).encode(), stream=stream, headers={"Nats-Rollup": "sub"})
    return before


async def _no_read_left(reader: JetStreamJournal, raw: Client, prefix: str) -> None:
    """No consumer of the object store is left on the server, no chunk subscription in the client."""
    assert await raw.jetstream().consumers_info(f"OBJ_{prefix}_objects_account") == []
    subjects = [sub.subject for sub in reader.client._subs.values()]  # pyright: ignore[reportPrivateUsage]
    assert not [subject for subject in subjects if not subject.startswith("_INBOX.")]
    assert len(subjects) <= 1  # the client's one inbox of requests


@pytest.mark.parametrize("size", [10, 4999])
async def test_a_refused_object_read_leaves_no_consumer_nor_subscription(
    nats_url: str, raw: Client, size: int
) -> None:
    prefix = unique_prefix()
    name = await _stored_object(nats_url, prefix)
    await _forge(raw, prefix, name, size=size)
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        for _ in range(3):
            with pytest.raises(
                JournalCorrupted, match="account/a: its reminders: its object holds more than"
            ):
                await asyncio.wait_for(reader.load_reminders(ACCOUNT), 5)
        await _no_read_left(reader, raw, prefix)


@pytest.mark.parametrize("size", ["10", 0, -1, True, 10.0, None, MISSING], ids=repr)
async def test_an_object_whose_stored_size_is_no_positive_integer_is_corrupted(
    nats_url: str, raw: Client, size: object
) -> None:
    """A size 0 or none read as an empty object: the reminders were silently gone (the journal
    never writes an empty object); a size of another type raised a TypeError."""
    prefix = unique_prefix()
    name = await _stored_object(nats_url, prefix)
    await _forge(raw, prefix, name, size=size)
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        with pytest.raises(
            JournalCorrupted, match=r"its object '.*' has a stored size of .*, not a positive"
        ):
            await asyncio.wait_for(reader.load_reminders(ACCOUNT), 5)
        await _no_read_left(reader, raw, prefix)


@pytest.mark.parametrize("nuid", ["NOSUCHNUID", ">", "a.b", "", 7])
async def test_an_object_naming_chunks_that_are_not_there_is_corrupted_at_once(
    nats_url: str, raw: Client, nuid: object
) -> None:
    """It waited forever, whatever the journal's timeout (nats-py's read has none)."""
    prefix = unique_prefix()
    name = await _stored_object(nats_url, prefix)
    await _forge(raw, prefix, name, nuid=nuid)
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, timeout=10) as reader:
        with pytest.raises(
            JournalCorrupted, match=r"account/a: its reminders: its object '.*' (lacks|names) chunks"
        ):
            await asyncio.wait_for(reader.load_reminders(ACCOUNT), 3)
        await _no_read_left(reader, raw, prefix)


async def test_chunks_gone_while_an_object_is_read_fail_within_the_journals_timeout(
    nats_url: str, raw: Client
) -> None:
    prefix = unique_prefix()
    name = await _stored_object(nats_url, prefix)
    nuid = (await _forge(raw, prefix, name))["nuid"]
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, timeout=0.3) as reader:
        js: Any = reader._records.js  # pyright: ignore[reportPrivateUsage]
        subscribe = js.subscribe

        async def purged_first(subject: str, **options: Any) -> Any:
            await raw.jetstream().purge_stream(
                f"OBJ_{prefix}_objects_account", subject=f"$O.{prefix}_objects_account.C.{nuid}"
            )
            return await subscribe(subject, **options)

        js.subscribe = purged_first
        with pytest.raises(PersistenceError, match=r"reading its object '.*' took more than 0.3 s a chunk"):
            await asyncio.wait_for(reader.load_reminders(ACCOUNT), 3)
        await _no_read_left(reader, raw, prefix)


@pytest.mark.parametrize(
    "fields",
    [
        {"options": {"link": {"bucket": "elsewhere", "name": "x"}}},
        {"options": {"link": {"bucket": "elsewhere"}}},
        {"digest": "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(b"other").digest()).decode()},
        {"digest": "SHA-256=!!"},
        {"digest": MISSING},
        {"chunks": 0},
        {"chunks": 2},
        {"options": []},
        {"options": [{}]},
    ],
    ids=[
        "link",
        "bucket-link",
        "other-digest",
        "bad-digest",
        "no-digest",
        "no-chunks",
        "more-chunks",
        "options-list",
        "options-list-of-one",
    ],
)
async def test_object_info_the_journal_never_writes_is_corrupted(
    nats_url: str, raw: Client, fields: dict[str, Any]
) -> None:
    prefix = unique_prefix()
    name = await _stored_object(nats_url, prefix)
    await _forge(raw, prefix, name, **fields)
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        with pytest.raises(JournalCorrupted, match="account/a: its reminders: its object"):
            await asyncio.wait_for(reader.load_reminders(ACCOUNT), 3)
        await _no_read_left(reader, raw, prefix)


@pytest.mark.parametrize("times", [1, 4])
async def test_an_object_removed_while_it_is_read_is_read_again_at_once(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, times: int
) -> None:
    """Another writer replaced the state (and removed its object) as the reader began to read
    its chunks, ``times`` times in a row: the read waited the journal's whole timeout for chunks
    that were gone, and then, reading the key once more only, said a replaced object was
    missing (``JournalCorrupted``)."""
    from nats.js.client import JetStreamContext

    prefix = unique_prefix()
    writer = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100)
    reader = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100, timeout=60)
    async with writer, reader:
        revisions = [await writer.save_state(ACCOUNT, 0, 1, b"0" * 5000)]
        subscribe = JetStreamContext.subscribe

        async def replacing_first(self: JetStreamContext, subject: str, *args: Any, **kwargs: Any) -> Any:
            if subject.startswith("$O.") and len(revisions) <= times:
                value = b"%d" % len(revisions) * 5000
                revisions.append(await writer.save_state(ACCOUNT, revisions[-1], 1, value))
            return await subscribe(self, subject, *args, **kwargs)

        monkeypatch.setattr(JetStreamContext, "subscribe", replacing_first)
        found = await asyncio.wait_for(reader.load_state(ACCOUNT), 10)  # not the 60 s timeout
        assert found is not None
        assert (found.revision, found.payload) == (revisions[-1], b"%d" % times * 5000)


async def test_a_state_replaced_at_every_read_is_no_corruption(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state replaced (its object removed) each time the reader begins its object: after five
    reads of the key, each naming another object, a `PersistenceError` that says so, not
    `JournalCorrupted`: nothing stored is wrong."""
    from nats.js.client import JetStreamContext

    prefix = unique_prefix()
    writer = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100)
    reader = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100, timeout=60)
    async with writer, reader:
        revisions = [await writer.save_state(ACCOUNT, 0, 1, b"0" * 5000)]
        subscribe = JetStreamContext.subscribe

        async def replacing(self: JetStreamContext, subject: str, *args: Any, **kwargs: Any) -> Any:
            if subject.startswith("$O."):
                revisions.append(await writer.save_state(ACCOUNT, revisions[-1], 1, b"1" * 5000))
            return await subscribe(self, subject, *args, **kwargs)

        monkeypatch.setattr(JetStreamContext, "subscribe", replacing)
        with pytest.raises(
            PersistenceError, match="account/a: its states record was replaced at each of 5 reads"
        ) as caught:
            await asyncio.wait_for(reader.load_state(ACCOUNT), 10)
        assert not isinstance(caught.value, JournalCorrupted)
        assert len(revisions) == 6


async def test_an_object_missing_under_its_key_is_corrupted(nats_url: str) -> None:
    """The key names an object that is not there (removed by hand; the key unchanged since):
    `JournalCorrupted` naming it, after one more read of the key."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as journal:
        await journal.save_state(ACCOUNT, 0, 1, b"1" * 5000)
        js = journal.client.jetstream()
        name = ((await (await js.key_value(f"{prefix}_states_account")).get("a")).value or b"").decode()
        await (await js.object_store(f"{prefix}_objects_account")).delete(name.split(" ", 1)[1])
        with pytest.raises(
            JournalCorrupted,
            match=r"account/a: the object 'states\.a\.[0-9a-f]{32}' holding its states is missing",
        ):
            await asyncio.wait_for(journal.load_state(ACCOUNT), 10)


async def test_an_object_missing_under_a_key_rewritten_as_it_is_read_is_corrupted(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key names an object that is gone, and another client writes the same value again
    between each read of the key and of its object (a new revision each time): the name is
    never reused, so the object is missing (`JournalCorrupted`), not replaced."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as journal:
        await journal.save_state(ACCOUNT, 0, 1, b"1" * 5000)
        js = journal.client.jetstream()
        bucket = await js.key_value(f"{prefix}_states_account")
        value = (await bucket.get("a")).value or b""
        await (await js.object_store(f"{prefix}_objects_account")).delete(value.decode().split(" ", 1)[1])
        rewrites: list[int] = []

        async def rewriting(*args: Any, **kwargs: Any) -> Any:
            rewrites.append(await bucket.put("a", value))
            return await read_object(*args, **kwargs)

        monkeypatch.setattr("actorio.persistence._jetstream_records.read_object", rewriting)
        with pytest.raises(JournalCorrupted, match="holding its states is missing"):
            await asyncio.wait_for(journal.load_state(ACCOUNT), 10)
        assert len(rewrites) == 1


async def test_the_last_object_found_gone_is_told_from_a_replaced_one(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced at four object reads in a row, then the fifth object is removed by hand under an
    unchanged key: the key is read once more, and the object is missing (`JournalCorrupted`),
    not 'replaced at each of 5 reads'."""
    prefix = unique_prefix()
    writer = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100)
    reader = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100)
    async with writer, reader:
        revisions = [await writer.save_state(ACCOUNT, 0, 1, b"0" * 5000)]
        store = await writer.client.jetstream().object_store(f"{prefix}_objects_account")
        names: list[str] = []

        async def racing(js: Any, objects: Any, bucket: str, name: str, **kwargs: Any) -> Any:
            names.append(name)
            if len(names) <= 4:
                value = b"%d" % len(revisions) * 5000
                revisions.append(await writer.save_state(ACCOUNT, revisions[-1], 1, value))
            else:
                await store.delete(name)
            return await read_object(js, objects, bucket, name, **kwargs)

        monkeypatch.setattr("actorio.persistence._jetstream_records.read_object", racing)
        with pytest.raises(JournalCorrupted, match="holding its states is missing"):
            await asyncio.wait_for(reader.load_state(ACCOUNT), 10)
        assert len(names) == 5


async def test_an_unsure_write_keeps_the_object_its_key_may_name(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stores the key's update but its acknowledgement is lost: the object the key
    now names was removed (the state lost: its read-back was 'missing'). It stays, and the
    read-back finds the state; an update the server refused still removes its object."""
    from nats.js.kv import KeyValue

    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as journal:
        revision = await journal.save_state(ACCOUNT, 0, 1, b"1" * 5000)
        update = KeyValue.update

        async def acknowledgement_lost(self: KeyValue, *args: Any, **kwargs: Any) -> Any:
            await update(self, *args, **kwargs)
            raise nats.errors.TimeoutError

        monkeypatch.setattr(KeyValue, "update", acknowledgement_lost)
        with pytest.raises(PersistenceError, match="may or may not be stored"):
            await journal.save_state(ACCOUNT, revision, 1, b"2" * 5000)
        monkeypatch.setattr(KeyValue, "update", update)
        found = await asyncio.wait_for(journal.load_state(ACCOUNT), 10)
        assert found is not None
        assert (found.revision, found.payload) == (revision + 1, b"2" * 5000)

        store = await journal.client.jetstream().object_store(f"{prefix}_objects_account")
        before = {info.name for info in await store.list(ignore_deletes=True)}
        with pytest.raises(WriterConflict):
            await journal.save_state(ACCOUNT, revision, 1, b"3" * 5000)  # a stale revision: refused
        assert {info.name for info in await store.list(ignore_deletes=True)} == before
