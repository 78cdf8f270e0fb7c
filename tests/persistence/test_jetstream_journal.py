"""What is particular to the JetStream journal: what it reads back from the server is checked
before it is believed (a message that is not an event batch is a clear error); values larger
than one message go to the object store, and an append too large is refused at the write."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js.api import DiscardPolicy, RetentionPolicy

from actorio.persistence import (
    EventData,
    EventRecord,
    JetStreamJournal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    ReminderRecord,
    SnapshotRecord,
    WriterConflict,
)
from actorio.persistence import _journal as journal_module
from actorio.persistence._event_batches import decode_batch, encode_batch
from actorio.persistence._jetstream_wire import (
    UnreadableAcknowledgement,
    acknowledged_sequence,
    filter_covers,
)

from .journals import unique_prefix

ACCOUNT = PersistenceId("account", "a")


def test_a_batch_reads_back_as_it_was_written() -> None:
    events = [EventData("Deposited", 2, b'{"amount":1}'), EventData("Withdrawn", 1, b"{}")]
    records = decode_batch(ACCOUNT, encode_batch(7, events, 12.5))
    assert [(r.sequence, r.name, r.version, r.payload, r.written) for r in records] == [
        (7, "Deposited", 2, b'{"amount":1}', 12.5),
        (8, "Withdrawn", 1, b"{}", 12.5),
    ]


def test_an_acknowledgement_gives_its_stream_sequence() -> None:
    assert acknowledged_sequence(b'{"stream":"S","seq":42}') == 42


def test_a_refusal_is_the_servers_error_with_its_code() -> None:
    refusal = b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}'
    with pytest.raises(nats.js.errors.APIError) as caught:
        acknowledged_sequence(refusal)
    assert (caught.value.code, caught.value.err_code) == (400, 10071)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff not JSON",
        b"[" * 100_000,  # nested too deep
        b"[1, 2]",
        b'{"error": "refused"}',
        b'{"stream":"S"}',
        b'{"seq":"42"}',
        b'{"seq":true}',
        b'{"seq":0}',
    ],
)
def test_an_acknowledgement_that_says_nothing_readable_is_unreadable(data: bytes) -> None:
    """An append answered so is reported as unsure (it may or may not be stored), not believed."""
    with pytest.raises(UnreadableAcknowledgement):
        acknowledged_sequence(data)


def test_a_refusal_with_hostile_fields_is_still_a_refusal() -> None:
    with pytest.raises(nats.js.errors.APIError) as caught:
        acknowledged_sequence(
            b'{"error":{"code":"x","err_code":null,"unknown":1,"description":"' + b"d" * 5000 + b'"}}'
        )
    assert (caught.value.code, caught.value.err_code) == (None, None)
    assert len(caught.value.description or "") == 500


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a batch at all, but long enough to unpack",
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0)[:-1],  # truncated
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0) + b"x",  # trailing bytes
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0).replace(b"AE1", b"XX1"),
        encode_batch(1, [EventData("\u00e9", 1, b"{}")], 0.0).replace("\u00e9".encode(), b"\xff\xfe"),
    ],
)
def test_anything_else_is_reported_as_corrupted(data: bytes) -> None:
    with pytest.raises(JournalCorrupted, match="account/a: a stored message is not an event batch"):
        decode_batch(ACCOUNT, data)


# -- values larger than one message: the object store ---------------------------------------------


async def objects(journal: JetStreamJournal, entity_type: str) -> list[str]:
    """The names of the objects in the entity type's object store."""
    store = await journal.client.jetstream().object_store(f"{journal.prefix}_objects_{entity_type}")
    try:
        return sorted(info.name or "" for info in await store.list(ignore_deletes=True))
    except nats.js.errors.NotFoundError:  # the store has no object
        return []


@pytest.mark.asyncio
async def test_a_state_larger_than_one_message_goes_to_the_object_store(nats_url: str) -> None:
    big = b'{"blob": "' + b"x" * 1_500_000 + b'"}'  # more than the server's 1 MB max_payload
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.save_state(ACCOUNT, 0, 1, big) == 1
        stored = await journal.load_state(ACCOUNT)
        assert stored is not None
        assert (stored.revision, stored.version, stored.payload) == (1, 1, big)
        assert len(await objects(journal, "account")) == 1
        # The key is still the point of optimistic concurrency; the loser's object is removed.
        with pytest.raises(WriterConflict):
            await journal.save_state(ACCOUNT, 0, 1, big + b" ")
        assert len(await objects(journal, "account")) == 1
        # Replaced by a small state: the object is removed.
        assert await journal.save_state(ACCOUNT, 1, 1, b"{}") == 2
        assert await objects(journal, "account") == []
        other = await JetStreamJournal.connect(nats_url, prefix=journal.prefix)
        async with other:  # another process reads it back the same way
            found = await other.load_state(ACCOUNT)
            assert found is not None
            assert found.payload == b"{}"


@pytest.mark.asyncio
async def test_large_snapshots_and_reminders_go_to_the_object_store(nats_url: str) -> None:
    journal = await JetStreamJournal.connect(nats_url, prefix=unique_prefix(), max_inline=200)
    async with journal:
        payload = b'{"amount": ' + b"1" * 500 + b"}"
        await journal.save_snapshot(SnapshotRecord(ACCOUNT, 7, 1, payload))
        snapshot = await journal.load_snapshot(ACCOUNT)
        assert snapshot is not None
        assert (snapshot.sequence, snapshot.version, snapshot.payload) == (7, 1, payload)
        message = b'{"type": "Wake", "data": {"note": "' + b"z" * 300 + b'"}}'
        await journal.save_reminder(ReminderRecord(ACCOUNT, "wake", 12.5, message))
        await journal.save_reminder(ReminderRecord(ACCOUNT, "later", 13.0, b"{}"))
        assert [(r.name, r.due, r.message) for r in await journal.load_reminders(ACCOUNT)] == [
            ("later", 13.0, b"{}"),
            ("wake", 12.5, message),
        ]
        assert len(await objects(journal, "account")) == 2  # one snapshot, one reminder ("wake")
        await journal.delete_reminder(ACCOUNT, "wake")  # its object goes with it
        await journal.save_snapshot(SnapshotRecord(ACCOUNT, 8, 1, b"{}"))
        assert await objects(journal, "account") == []
        assert await journal.persistence_ids() == [ACCOUNT]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["delete", "purge"])
async def test_a_key_deleted_by_someone_else_reads_as_nothing_and_can_be_written_again(
    nats_url: str, how: str
) -> None:
    """A delete or purge marker is the key's last revision: a state, or reminders, saved after it
    as after nothing stored are written after the marker (not refused as another writer's, nor
    tried again and again)."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        js = journal.client.jetstream()
        assert await journal.save_state(ACCOUNT, 0, 1, b"{}") == 1
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b"{}"))
        for kind in ("states", "reminders"):
            bucket = await js.key_value(f"{journal.prefix}_{kind}_account")
            key = ACCOUNT.entity_id if kind == "states" else f"{ACCOUNT.entity_id}.r"  # a key per reminder
            await (bucket.delete(key) if how == "delete" else bucket.purge(key))
        assert await journal.load_state(ACCOUNT) is None
        assert await journal.load_reminders(ACCOUNT) == []
        revision = await journal.save_state(ACCOUNT, 0, 1, b'{"n": 1}')
        assert revision > 1
        stored = await journal.load_state(ACCOUNT)
        assert stored is not None
        assert (stored.revision, stored.payload) == (revision, b'{"n": 1}')
        with pytest.raises(WriterConflict):  # the fence holds after the marker as before
            await journal.save_state(ACCOUNT, 0, 1, b'{"n": 2}')
        await asyncio.wait_for(journal.save_reminder(ReminderRecord(ACCOUNT, "s", 2.0, b"{}")), 10)
        assert [r.name for r in await journal.load_reminders(ACCOUNT)] == ["s"]


@pytest.mark.asyncio
async def test_a_key_naming_another_records_object_is_corrupted_and_that_object_is_kept(
    nats_url: str,
) -> None:
    """A key (written by anyone) that names the object holding another id's state is refused:
    reading it would give that state, and replacing it would remove the other's object."""
    other = PersistenceId("account", "victim")
    journal = await JetStreamJournal.connect(nats_url, prefix=unique_prefix(), max_inline=8)
    async with journal:
        await journal.save_state(other, 0, 1, b'{"amount": 42}')
        bucket = await journal.client.jetstream().key_value(f"{journal.prefix}_states_account")
        pointer = (await bucket.get("victim")).value
        assert pointer is not None
        assert pointer.startswith(b"@object states.victim.")
        await bucket.put(ACCOUNT.entity_id, pointer)
        with pytest.raises(JournalCorrupted, match="account/a: its states key names another record's object"):
            await journal.load_state(ACCOUNT)
        for forged in (b"@object states.a.x", b"@object states.a." + b"0" * 31 + b"g"):
            await bucket.put(ACCOUNT.entity_id, forged)
            with pytest.raises(JournalCorrupted, match="names another record's object"):
                await journal.load_state(ACCOUNT)
        found = await journal.load_state(other)
        assert found is not None
        assert found.payload == b'{"amount": 42}'


@pytest.mark.asyncio
async def test_an_append_larger_than_one_message_is_refused_at_the_write(nats_url: str) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        events = [EventData("E", 1, b"x" * 600_000), EventData("E", 1, b"y" * 600_000)]
        with pytest.raises(PersistenceError, match=r"do not fit in one message.*nothing was written"):
            await journal.append(ACCOUNT, 0, events)
        assert await journal.last_sequence(ACCOUNT) == 0
        assert await journal.append(ACCOUNT, 0, events[:1]) == 1  # one of them fits


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "stored",
    [
        b"[" * 100_000 + b"]" * 100_000 + b"\n{}",
        b"NaN\n{}",
        b"Infinity\n{}",
        b"1e999\n{}",
        b"",
    ],
    ids=["nested too deep", "nan", "infinity", "overflow", "empty"],
)
async def test_hostile_stored_reminders_are_reported_as_corrupted(nats_url: str, stored: bytes) -> None:
    """Whoever can write the reminders bucket cannot crash a recovery with a RecursionError nor
    arm a reminder that is never (or always) due."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b"{}"))
        bucket = await journal.client.jetstream().key_value(f"{journal.prefix}_reminders_account")
        await bucket.put("a.r", stored)
        with pytest.raises(JournalCorrupted, match="account/a: stored reminders are not a record"):
            await journal.load_reminders(ACCOUNT)


@pytest.mark.asyncio
async def test_a_stream_of_its_name_must_store_its_subjects(nats_url: str) -> None:
    """An append sends no Nats-Expected-Stream header: the stream it finds made must take the
    type's subjects (then it alone does), else nothing is written anywhere."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        js = journal.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
        await js.add_stream(name=f"{prefix.upper()}_EVENTS_account", subjects=[f"{prefix}.other"])  # pyright: ignore[reportUnknownMemberType]
        with pytest.raises(PersistenceError, match=r"does not store the subjects"):
            await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])
        await js.delete_stream(f"{prefix.upper()}_EVENTS_account")
        await js.add_stream(name=f"{prefix.upper()}_EVENTS_account", subjects=[f"{prefix}.events.>"])  # pyright: ignore[reportUnknownMemberType]
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")]) == 1
        with pytest.raises(WriterConflict):
            await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"max_msgs_per_subject": 1}, "max_msgs_per_subject 1 with discard old"),
        ({"max_msgs": 100}, "max_msgs 100 with discard old"),
        ({"max_age": 3600.0}, "max_age 3600 s"),
        ({"retention": RetentionPolicy.WORK_QUEUE}, "retention workqueue"),
        ({"max_msgs_per_subject": 1, "discard": DiscardPolicy.NEW}, "max_msgs_per_subject 1\\)"),
    ],
    ids=["per subject", "messages", "age", "work queue", "per subject, discard new"],
)
async def test_a_stream_made_beforehand_that_deletes_events_is_refused(
    nats_url: str, limits: dict[str, Any], named: str
) -> None:
    """Limits under which the server deletes events by itself would lose acknowledged ones (an id
    whose first events went recovers as corrupted, or as shorter): refused at the first use."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        js = journal.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
        name = f"{prefix.upper()}_EVENTS_account"
        await js.add_stream(name=name, subjects=[f"{prefix}.events.account.*"], **limits)  # pyright: ignore[reportUnknownMemberType]
        with pytest.raises(
            PersistenceError, match=f"its settings delete stored events by themselves \\({named}"
        ):
            await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])
        assert (await js.stream_info(name)).state.messages == 0


@pytest.mark.asyncio
async def test_an_object_store_made_beforehand_with_a_ttl_is_refused(nats_url: str) -> None:
    """Large states and snapshots live there: expiring, they would be missing later."""
    prefix = unique_prefix()
    journal = await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=8)
    async with journal:
        js = journal.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
        await js.create_object_store(f"{prefix}_objects_account", ttl=60)  # pyright: ignore[reportUnknownMemberType]
        deleting = r"its settings delete stored objects by themselves \(max_age 60 s"
        with pytest.raises(PersistenceError, match=deleting):
            await journal.save_state(ACCOUNT, 0, 1, b'{"amount": 1}')


@pytest.mark.asyncio
async def test_a_bucket_made_beforehand_with_a_ttl_is_refused(nats_url: str) -> None:
    """A states bucket whose values expire would give back an initial state, saying nothing."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        js = journal.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
        await js.create_key_value(bucket=f"{prefix}_states_account", ttl=60)  # pyright: ignore[reportUnknownMemberType]
        with pytest.raises(
            PersistenceError, match=r"its settings delete stored states by themselves \(max_age 60 s"
        ):
            await journal.save_state(ACCOUNT, 0, 1, b"{}")


async def _last_event_reads(spy: Subscription, raw: Client, prefix: str) -> int:
    """How many "last message of a subject" reads of the streams of ``prefix`` the spy saw (the
    server delivered them before it answered the flush). Only those: a journal of an earlier
    test on the same server, still closing on a busy machine, may read its own."""
    await raw.flush()
    subjects = [(await spy.next_msg(timeout=5)).subject for _ in range(spy.pending_msgs)]
    streams = f".{prefix.upper()}_EVENTS_"
    return sum(
        (".MSG.GET." in subject or ".DIRECT.GET." in subject) and streams in subject for subject in subjects
    )


@pytest.mark.asyncio
async def test_an_id_read_as_empty_is_not_read_again_and_stays_fenced(nats_url: str, raw: Client) -> None:
    """An id found with no event is remembered as such, as a found last event is: its first
    append reads nothing more. The writer fence still refuses that append if another writer
    stored an event since, and nothing of it is written."""
    spy = await raw.subscribe("$JS.API.>")
    prefix = unique_prefix()
    mine = await JetStreamJournal.connect(nats_url, prefix=prefix)
    theirs = await JetStreamJournal.connect(nats_url, prefix=prefix)
    async with mine, theirs:
        other = PersistenceId("account", "b")
        assert await mine.last_sequence(ACCOUNT) == 0
        assert await mine.last_sequence(other) == 0
        await _last_event_reads(spy, raw, prefix)
        assert await mine.append(ACCOUNT, 0, [EventData("E", 1, b'{"n": 1}')]) == 1
        assert await _last_event_reads(spy, raw, prefix) == 0  # known: nothing read before the write
        assert await theirs.append(other, 0, [EventData("E", 1, b'{"theirs": 1}')]) == 1
        with pytest.raises(WriterConflict) as conflict:
            await mine.append(other, 0, [EventData("E", 1, b'{"mine": 1}')])
        assert (conflict.value.expected, conflict.value.found) == (0, 1)
        assert [record.payload async for record in mine.read(other)] == [b'{"theirs": 1}']


@pytest.mark.asyncio
async def test_what_a_journal_remembers_of_ids_is_bounded(
    nats_url: str, raw: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond `LAST_KEPT` ids, the journal forgets what it knew of every id: an id forgotten is
    read again before its next append, which is fenced as before."""
    monkeypatch.setattr(journal_module, "LAST_KEPT", 2)
    spy = await raw.subscribe("$JS.API.>")
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        ids = [PersistenceId("account", name) for name in "abc"]
        for persistence_id in ids:
            assert await journal.append(persistence_id, 0, [EventData("E", 1, b"{}")]) == 1
        await _last_event_reads(spy, raw, prefix)
        assert await journal.append(ids[2], 1, [EventData("E", 1, b"{}")]) == 2  # remembered
        assert await _last_event_reads(spy, raw, prefix) == 0
        assert await journal.append(ids[0], 1, [EventData("E", 1, b"{}")]) == 2  # forgotten: read
        assert await _last_event_reads(spy, raw, prefix) == 1
        with pytest.raises(WriterConflict):
            await journal.append(ids[1], 0, [EventData("E", 1, b"{}")])


@pytest.mark.asyncio
async def test_recovery_reads_from_the_message_holding_the_snapshots_event(
    nats_url: str, raw: Client
) -> None:
    """A new journal (the next process) that loaded a snapshot reads the events after it from
    the stream message holding the snapshot's event on: its consumer asks for that start."""
    spy = await raw.subscribe("$JS.API.CONSUMER.CREATE.>")
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as first:
        for sequence in range(4):  # stream messages 1 to 4, one event each
            await first.append(ACCOUNT, sequence, [EventData("E", 1, b'{"n": %d}' % sequence)])
        await first.save_snapshot(SnapshotRecord(ACCOUNT, 4, 1, b"{}"))
        await first.append(ACCOUNT, 4, [EventData("E", 1, b'{"n": 4}'), EventData("E", 1, b'{"n": 5}')])
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as second:
        assert await second.load_snapshot(ACCOUNT) == SnapshotRecord(ACCOUNT, 4, 1, b"{}")
        await raw.flush()
        before = spy.pending_msgs
        assert [(r.sequence, r.payload) async for r in second.read(ACCOUNT, 4)] == [
            (5, b'{"n": 4}'),
            (6, b'{"n": 5}'),
        ]
        await raw.flush()
        requests = [json.loads((await spy.next_msg(timeout=5)).data) for _ in range(spy.pending_msgs)]
    config = requests[before]["config"]
    assert (config["deliver_policy"], config["opt_start_seq"]) == ("by_start_sequence", 4)


@pytest.mark.parametrize(
    ("subject_filter", "covers"),
    [
        ("p.events.T.*", True),
        ("p.events.>", True),
        (">", True),
        ("p.*.T.*", True),
        ("p.events.T.a", False),
        ("p.events.T", False),
        ("p.events.T.*.x", False),
        ("p.events.U.*", False),
        ("p.events.T.>", True),
    ],
)
def test_which_subject_filters_take_a_types_subjects(subject_filter: str, covers: bool) -> None:
    assert filter_covers(subject_filter, "p.events.T.*") is covers


@pytest.mark.asyncio
@pytest.mark.parametrize("forged", [(0, 1), (1, 2)], ids=["numbered-from-0", "numbered-again"])
async def test_a_batch_out_of_the_numbering_is_refused_not_skipped(
    nats_url: str, raw: Client, forged: tuple[int, int]
) -> None:
    """Batches follow on from event 1. One stored by someone else that does not (numbered from
    0, or numbering events again) is refused at recovery even when all its events come before
    the point read from (a snapshot's), where it used to be skipped unseen; and a last message
    numbered from 0 is refused where the last event is read."""
    prefix = unique_prefix()
    event = EventData("E", 1, b"{}")
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as writer:
        assert await writer.append(ACCOUNT, 0, [event, event]) == 2
        subject = writer._subject(ACCOUNT)  # pyright: ignore[reportPrivateUsage]
    js = raw.jetstream()
    first, count = forged
    await js.publish(subject, encode_batch(first, [event] * count, 0.0))
    await js.publish(subject, encode_batch(3, [event], 0.0))
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        assert await reader.last_sequence(ACCOUNT) == 3
        with pytest.raises(
            JournalCorrupted, match=f"holds {count} events from {first}, expected events from 3"
        ):
            [record async for record in reader.read(ACCOUNT, after=2)]
    await js.publish(subject, encode_batch(0, [event], 0.0))
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        with pytest.raises(
            JournalCorrupted, match="account/a: the last stored message is not an event batch"
        ):
            await reader.last_sequence(ACCOUNT)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["events", "states"])
async def test_a_subject_that_is_no_persistence_id_is_corrupted_naming_it(
    nats_url: str, raw: Client, kind: str
) -> None:
    """Another client publishing to the journal's stream or bucket under a key that is no valid
    entity id makes `persistence_ids` raise `JournalCorrupted` naming it, as on SQLite (it used to
    be a raw ``ValueError``)."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])
        await journal.save_state(ACCOUNT, 0, 1, b"{}")
        if kind == "events":
            stream, subject = (
                f"{journal.prefix.upper()}_EVENTS_account",
                f"{journal.prefix}.events.account.b@d",
            )
        else:
            stream, subject = (
                f"KV_{journal.prefix}_states_account",
                f"$KV.{journal.prefix}_states_account.b@d",
            )
        await raw.jetstream().publish(subject, b"1\n{}", stream=stream)
        with pytest.raises(
            JournalCorrupted, match=f"{stream}: the stored subject '.*b@d' is not a persistence id"
        ):
            await journal.persistence_ids()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("head", "error"),
    [
        (
            b"2 1 999999",
            "its stored snapshot says event 2 is in stream message 999999, beyond the id's last, 4",
        ),
        (b"2 1 4", "its stored snapshot says event 2 is in stream message 4, whose events begin at 4"),
        (b"2 1 -1", "its stored snapshot's head holds a negative number"),
    ],
    ids=["beyond-the-last", "after-the-event", "negative"],
)
async def test_a_forged_snapshot_hint_is_corrupted_at_once(
    nats_url: str, raw: Client, head: bytes, error: str
) -> None:
    """A snapshot whose head (written by another client) names a stream message that cannot hold
    its event is `JournalCorrupted` at once: no wait for a message that never comes (it used to
    cost the journal's whole timeout), no events skipped."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as writer:
        for sequence in range(4):  # stream messages 1 to 4, one event each
            await writer.append(ACCOUNT, sequence, [EventData("E", 1, b"{}")])
        await writer.save_snapshot(SnapshotRecord(ACCOUNT, 2, 1, b"{}"))
    bucket = await raw.jetstream().key_value(f"{prefix}_snapshots_account")
    await bucket.put(ACCOUNT.entity_id, head + b"\n{}")
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, timeout=30) as reader:
        with pytest.raises(JournalCorrupted, match=f"account/a: {error}"):
            await asyncio.wait_for(_load_and_read(reader, 2), 5)


async def _load_and_read(journal: JetStreamJournal, after: int) -> list[EventRecord]:
    """Load the snapshot (which keeps its hint), then read the events after ``after``."""
    await journal.load_snapshot(ACCOUNT)
    return [record async for record in journal.read(ACCOUNT, after)]


@pytest.mark.asyncio
async def test_a_value_larger_than_max_object_is_refused_at_the_write(nats_url: str) -> None:
    journal = await JetStreamJournal.connect(
        nats_url, prefix=unique_prefix(), max_inline=100, max_object=1000
    )
    async with journal:
        with pytest.raises(
            PersistenceError, match=r"account/a: its states of 2002 bytes is larger than max_object"
        ):
            await journal.save_state(ACCOUNT, 0, 1, b"x" * 2000)
        assert await journal.load_state(ACCOUNT) is None
        with pytest.raises(ValueError, match="max_object must be at least 1"):
            JetStreamJournal(journal.client, max_object=0)


@pytest.mark.asyncio
async def test_a_stored_object_larger_than_max_object_is_refused_before_it_is_read(
    nats_url: str, raw: Client
) -> None:
    """Its size is read from the object's info: nothing of the object is read (no consumer of
    its chunks is made), and the error names the id and the size."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as writer:
        await writer.save_snapshot(SnapshotRecord(ACCOUNT, 0, 1, b"x" * 5000))
    spy = await raw.subscribe("$JS.API.CONSUMER.>")
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_object=1000) as reader:
        with pytest.raises(
            PersistenceError,
            match=r"account/a: its snapshots: its object .* is 5006 bytes, more than max_object",
        ):
            await reader.load_snapshot(ACCOUNT)
        assert await _chunk_reads(spy, raw, prefix) == 0
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_object=5006) as reader:
        snapshot = await reader.load_snapshot(ACCOUNT)
        assert snapshot is not None
        assert snapshot.payload == b"x" * 5000
        assert await _chunk_reads(spy, raw, prefix) == 1


async def _chunk_reads(spy: Subscription, raw: Client, prefix: str) -> int:
    """How many consumers of the type's object store the spy saw made (one per object read)."""
    await raw.flush()
    subjects = [(await spy.next_msg(timeout=5)).subject for _ in range(spy.pending_msgs)]
    return sum(f".CREATE.OBJ_{prefix}_objects_account" in subject for subject in subjects)


@pytest.mark.asyncio
async def test_an_object_holding_more_than_its_info_says_is_corrupted(nats_url: str, raw: Client) -> None:
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix, max_inline=100) as writer:
        await writer.save_snapshot(SnapshotRecord(ACCOUNT, 0, 1, b"x" * 5000))
        (name,) = await objects(writer, "account")
    js = raw.jetstream()
    stream = f"OBJ_{prefix}_objects_account"
    meta = f"$O.{prefix}_objects_account.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
    info = json.loads((await js.get_last_msg(stream, meta)).data or b"")
    info["size"] = 10
    await js.publish(meta, json.dumps(info).encode(), stream=stream, headers={"Nats-Rollup": "sub"})
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as reader:
        with pytest.raises(JournalCorrupted, match="account/a: its snapshots: its object holds more than"):
            await asyncio.wait_for(reader.load_snapshot(ACCOUNT), 5)


@pytest.mark.asyncio
async def test_a_stream_deleted_under_a_running_journal_is_an_error_not_an_empty_history(
    nats_url: str, raw: Client
) -> None:
    """It read as an empty history (an actor recovered to its initial state), and every append
    then failed unsure."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 3) == 3
        stream = journal._stream_name("account")  # pyright: ignore[reportPrivateUsage]
        await raw.jetstream().delete_stream(stream)
        for reading in (journal.last_sequence(ACCOUNT), _read_all(journal, ACCOUNT)):
            with pytest.raises(PersistenceError, match=f"the stream {stream} is gone"):
                await reading
        with pytest.raises(PersistenceError, match="is gone"):
            await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")])


@pytest.mark.asyncio
async def test_events_purged_under_a_running_journal_are_corrupted_not_an_empty_history(
    nats_url: str, raw: Client
) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 3) == 3
        stream = journal._stream_name("account")  # pyright: ignore[reportPrivateUsage]
        await raw.jetstream().purge_stream(stream, subject=journal._subject(ACCOUNT))  # pyright: ignore[reportPrivateUsage]
        with pytest.raises(JournalCorrupted, match="events 1 to 3 are gone"):
            await journal.last_sequence(ACCOUNT)
        with pytest.raises(JournalCorrupted, match="are gone"):
            await _read_all(journal, ACCOUNT)


@pytest.mark.asyncio
async def test_the_newest_events_deleted_under_a_running_journal_are_corrupted_not_a_conflict(
    nats_url: str, raw: Client
) -> None:
    """Someone deletes an id's newest message. The journal knows a later event than the stream
    now holds: its next append, and its reads, are `JournalCorrupted`. (The append's refusal
    read as a `WriterConflict`, a restart recovered the shorter history without a word, and the
    next append reused the lost event's number.)"""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 2) == 2
        assert await journal.append(ACCOUNT, 2, [EventData("E", 1, b"{}")]) == 3
        stream = journal._stream_name("account")  # pyright: ignore[reportPrivateUsage]
        js = raw.jetstream()
        newest = await js.get_last_msg(stream, journal._subject(ACCOUNT))  # pyright: ignore[reportPrivateUsage]
        assert newest.seq is not None
        await js.delete_msg(stream, newest.seq)
        with pytest.raises(JournalCorrupted, match="events 3 to 3 are gone"):
            await journal.append(ACCOUNT, 3, [EventData("E", 1, b"{}")])
        with pytest.raises(JournalCorrupted, match="events 3 to 3 are gone"):
            await journal.last_sequence(ACCOUNT)
        with pytest.raises(JournalCorrupted, match="are gone"):
            await _read_all(journal, ACCOUNT)


@pytest.mark.asyncio
async def test_a_forged_later_message_is_named_as_written_by_someone_else(nats_url: str, raw: Client) -> None:
    """Someone stores, after an id's last append, a message that ends at an earlier event: the
    running journal says so, rather than that the events after it were purged or deleted."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")] * 3) == 3
        stream = journal._stream_name("account")  # pyright: ignore[reportPrivateUsage]
        subject = journal._subject(ACCOUNT)  # pyright: ignore[reportPrivateUsage]
        await raw.jetstream().publish(subject, encode_batch(1, [EventData("E", 1, b"{}")], 0.0))
        forged = f"the stream {stream}'s message 2, stored after its event 3, ends at event 1: written by"
        with pytest.raises(JournalCorrupted, match=forged):
            await journal.append(ACCOUNT, 3, [EventData("E", 1, b"{}")])
        with pytest.raises(JournalCorrupted, match="written by someone else"):
            await journal.last_sequence(ACCOUNT)


@pytest.mark.asyncio
async def test_a_read_answered_before_an_append_is_not_taken_for_lost_events(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of the last event answered before an append of the same journal was acknowledged
    finds fewer events than the journal holds once it is processed: that is no loss (about 1 in
    30 reads beside a loop of appends was taken for one), and the later last event is kept."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        assert await journal.append(ACCOUNT, 0, [EventData("E", 1, b"{}")]) == 1
        js = journal._js  # pyright: ignore[reportPrivateUsage]
        get_last_msg, answered, go_on = js.get_last_msg, asyncio.Event(), asyncio.Event()

        async def late(*args: Any, **kwargs: Any) -> Any:
            found = await get_last_msg(*args, **kwargs)
            answered.set()
            await go_on.wait()  # its processing waits: an append goes meanwhile
            return found

        monkeypatch.setattr(js, "get_last_msg", late)
        reading = asyncio.ensure_future(journal.last_sequence(ACCOUNT))
        await answered.wait()
        assert await journal.append(ACCOUNT, 1, [EventData("E", 1, b"{}")]) == 2
        go_on.set()
        assert await reading == 2
        monkeypatch.undo()
        assert await journal.append(ACCOUNT, 2, [EventData("E", 1, b"{}")]) == 3


async def _read_all(journal: JetStreamJournal, persistence_id: PersistenceId) -> list[EventRecord]:
    return [record async for record in journal.read(persistence_id)]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["states", "snapshots", "reminders"])
async def test_a_bucket_deleted_under_a_running_journal_is_an_error_not_nothing_stored(
    nats_url: str, raw: Client, kind: str
) -> None:
    """A durable state's actor recovered its initial state, and reminders were gone unsaid."""
    prefix = unique_prefix()
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        await journal.save_state(ACCOUNT, 0, 1, b"{}")
        await journal.save_snapshot(SnapshotRecord(ACCOUNT, 0, 1, b"{}"))
        await journal.save_reminder(ReminderRecord(ACCOUNT, "r", 1.0, b'{"type":"Tick","data":{}}'))
        await raw.jetstream().delete_key_value(f"{prefix}_{kind}_account")
        load = {
            "states": journal.load_state,
            "snapshots": journal.load_snapshot,
            "reminders": journal.load_reminders,
        }[kind]
        with pytest.raises(PersistenceError, match=f"the bucket {prefix}_{kind}_account is gone"):
            await load(ACCOUNT)
