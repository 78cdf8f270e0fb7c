"""`JetStreamJournal`: a journal in NATS JetStream, for actors on several machines: a stream per
entity type, a subject per persistence id, each append one message conditioned on the subject's
last sequence; snapshots, durable states and reminders in key-value buckets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from actorio._lazy import require_nats_client

try:
    import nats
except ImportError:  # the optional dependency: an error that says what to install
    require_nats_client("JetStreamJournal")
    raise
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    Header,
    StorageType,
    StreamConfig,
)

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError, WriterConflict
from ._event_batches import batch_header, decode_batch, encode_batch
from ._jetstream_ids import journal_streams, stream_subjects, streams
from ._jetstream_objects import end_read
from ._jetstream_records import HEADROOM, KeyRecords
from ._jetstream_reminders import delete_reminder, holds_reminders, load_reminders, save_reminder, subject_id
from ._jetstream_wire import (
    UnreadableAcknowledgement,
    acknowledged_sequence,
    check_hint,
    check_kept,
    check_not_gone,
    events_gone,
    failed,
    filter_covers,
    foreign_last,
    found_or_made,
    needs_jetstream,
    split_record,
    stored_id,
)
from ._journal import Journal, keep_last
from ._records import EventData, EventRecord, PersistenceId, ReminderRecord, SnapshotRecord, StateRecord

__all__ = ["JetStreamJournal"]

_WRONG_LAST_SEQUENCE = (10071, 10164)
_EXPECTED_LAST: str = Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
MAX_OBJECT = 64 * 1024 * 1024
"""The default ``max_object`` of a `JetStreamJournal`: 64 MiB."""


class JetStreamJournal(Journal):
    """A `Journal` in NATS JetStream.

    Layout (``prefix`` is ``"actorio"`` by default): the events of entity type ``T`` are in the
    stream ``<PREFIX>_EVENTS_T``, those of one id on the subject ``<prefix>.events.T.<id>``, one
    message per append (so a batch of events is written whole or not at all). An append is
    published with ``Nats-Expected-Last-Subject-Sequence``: the server refuses it if anything was
    appended to the id since the writer read it, and the writer gets `WriterConflict`, nothing
    written. Snapshots, states and reminders are in the key-value buckets
    ``<prefix>_snapshots_T``, ``<prefix>_states_T`` and ``<prefix>_reminders_T`` (a state's
    revision is its key-value revision; a key per reminder, ``<id>.<name>``). Streams and
    buckets are made on first use (or beforehand: `provision`), with file storage and ``replicas``
    replicas.

    Durability is the server's: an append returns on the server's acknowledgement (the message
    is stored; on a cluster, on a majority of ``replicas``). A snapshot, a state or a
    reminder larger than one message (``max_inline``: the server's ``max_payload``, 1 MB by
    default, less 4 KB) go to the object store ``<prefix>_objects_T``, and their key names the
    object: the key stays the point of optimistic concurrency, the object is written first and
    removed when the key no longer names it. Such a value is at most ``max_object`` bytes
    (`MAX_OBJECT`, 64 MiB, by default): a larger one is refused where it is written, and a
    stored object larger than that is refused before it is read. One append (a batch of events)
    must fit in one message: a larger one raises `PersistenceError` at the append.

    Make it with `connect` (it then owns the connection and closes it) or from a connected
    nats-py client.
    """

    def __init__(
        self,
        client: Client,
        *,
        prefix: str = "actorio",
        replicas: int = 1,
        timeout: float = 5.0,
        max_inline: int | None = None,
        max_object: int = MAX_OBJECT,
    ) -> None:
        PersistenceId(prefix, "x")  # the same rules as a name
        if (max_inline is not None and max_inline < 1) or max_object < 1:
            raise ValueError("max_inline and max_object must be at least 1")
        self.client = client
        self.max_inline = max_inline
        """The largest value kept in a key itself (``None``: the server's ``max_payload`` less
        4 KB); a larger snapshot, state or reminder goes to the object store."""
        self.max_object = max_object
        """The largest snapshot, state or reminder written or read (bytes): a larger
        one is refused at the write, and an object larger than it, as its stored size says,
        is `PersistenceError` before it is read (memory stays bounded, whatever is stored)."""
        self.prefix = prefix
        self.replicas = replicas
        self.timeout = timeout
        self._js = client.jetstream(timeout=timeout)  # pyright: ignore[reportUnknownMemberType]
        self._owns_client = False
        self._streams: set[str] = set()
        self._records = KeyRecords(self)
        self._last: dict[PersistenceId, tuple[int, int]] = {}
        """id -> (its last event's sequence, the stream sequence of the message holding it)."""
        self._hints: dict[PersistenceId, tuple[int, int]] = {}
        """id -> (its snapshot's sequence, the stream sequence of the message holding that event)."""
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = "actorio",
        replicas: int = 1,
        timeout: float = 5.0,
        max_inline: int | None = None,
        max_object: int = MAX_OBJECT,
        **options: Any,
    ) -> JetStreamJournal:
        """Connect to ``url`` (``options`` go to ``nats.connect``); the journal closes the
        connection when it is closed. ``timeout``: seconds to wait for each acknowledgement."""
        client = await nats.connect(url, **options)  # pyright: ignore[reportUnknownMemberType]
        journal = cls(
            client,
            prefix=prefix,
            replicas=replicas,
            timeout=timeout,
            max_inline=max_inline,
            max_object=max_object,
        )
        journal._owns_client = True
        return journal

    # -- names ------------------------------------------------------------------------------

    def _stream_name(self, entity_type: str) -> str:
        return f"{self.prefix.upper()}_EVENTS_{entity_type}"

    def _subject(self, persistence_id: PersistenceId) -> str:
        return f"{self.prefix}.events.{persistence_id.entity_type}.{persistence_id.entity_id}"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the journal is closed")

    async def _stream(self, entity_type: str) -> str:
        name = self._stream_name(entity_type)
        if name not in self._streams:
            try:
                with needs_jetstream(name):  # (its PersistenceError is not caught below)
                    await self._add_stream(name, entity_type)
            except (nats.errors.Error, asyncio.TimeoutError) as error:
                raise PersistenceError(f"{name}: could not make the stream ({error!r})") from error
            self._streams.add(name)
        return name

    async def _add_stream(self, name: str, entity_type: str) -> None:
        """Check the type's stream, or make it if there is none (`found_or_made`)."""
        subjects = f"{self.prefix}.events.{entity_type}.*"

        async def found() -> None:
            info = await self._js.stream_info(name)
            # It must store this type's subjects. Then it alone does (the server refuses streams
            # whose subjects overlap), so an append needs no Nats-Expected-Stream header.
            if not any(filter_covers(f, subjects) for f in info.config.subjects or ()):
                raise PersistenceError(
                    f"{name}: the stream exists but does not store the subjects "
                    f"{subjects} (its subjects: {shorten(repr(info.config.subjects))})"
                )
            check_kept(name, "events", info.config, per_subject=True, rollups=False)

        async def made() -> None:
            config = StreamConfig(
                name=name, subjects=[subjects], storage=StorageType.FILE, num_replicas=self.replicas
            )
            await self._js.add_stream(config)  # pyright: ignore[reportUnknownMemberType]

        await found_or_made(found, made, nats.js.errors.NotFoundError)

    async def provision(self, *entity_types: str) -> None:
        """Make every stream and bucket of each of ``entity_types`` now, or check those that
        exist: its events stream, its snapshots, states and reminders buckets and its object
        store. Otherwise each is made at its first use, which needs the right to create streams
        (with it, a user may in effect purge and delete any stream of its account: a stream's
        republish setting makes the server call the JetStream API for it). So an operator can
        provision the types as a user of its own, and give the journal's user no such right
        (docs/nats-security.md). Each is looked at again, even where this journal checked it
        before. `PersistenceError` if one cannot be made, or is not fit to keep
        the journal's records; `ValueError` for a type that is not a valid name."""
        self._check_open()
        for entity_type in entity_types:
            PersistenceId(entity_type, "x")  # the same rules as a name
        for entity_type in entity_types:
            self._streams.discard(self._stream_name(entity_type))  # looked at again, now
            self._records.forget(entity_type)
            await self._stream(entity_type)
            with failed(entity_type, "making its buckets and object store"):
                for kind in ("snapshots", "states", "reminders"):
                    await self._records.bucket(kind, entity_type)
                await self._records.object_store(entity_type)

    async def _fetch_last(self, persistence_id: PersistenceId) -> tuple[int, int]:
        stream = await self._stream(persistence_id.entity_type)
        stored = self._last.get(persistence_id)  # before the read (a later append is kept)
        try:
            message = await self._js.get_last_msg(stream, self._subject(persistence_id))
        except nats.js.errors.NotFoundError as error:
            # Nothing stored yet, as known now: kept like a found last event, so that a new
            # id's first append does not read it again. The writer fence (an expected last
            # subject sequence of 0) refuses that append if another writer stored one since.
            # Unless the stream, or events this journal saw, are gone: removed by someone else.
            check_not_gone(persistence_id, stream, error, stored)
            last = (0, 0)
        except (nats.errors.Error, asyncio.TimeoutError) as error:
            raise PersistenceError(f"{persistence_id}: could not read the last event ({error!r})") from error
        else:
            first, count = batch_header(persistence_id, message.data or b"")
            last = (first + count - 1, message.seq or 0)
            if stored is not None and last[0] < stored[0]:
                if last[1] > stored[1]:  # a later message, not a removal of the known one
                    raise foreign_last(persistence_id, stream, last[1], last[0], stored[0])
                raise events_gone(persistence_id, stream, last[0], stored[0])
        if (now := self._last.get(persistence_id)) is not None and now[0] > last[0]:
            return now  # an append acknowledged while the read was on its way
        keep_last(self._last, persistence_id, last)
        return last

    # -- events -----------------------------------------------------------------------------

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        self._check_open()
        known = self._last.get(persistence_id)
        if known is None or known[0] != expected_sequence:
            known = await self._fetch_last(persistence_id)
        if known[0] != expected_sequence:
            raise WriterConflict(str(persistence_id), expected_sequence, known[0])
        if not events:
            return expected_sequence
        stream = self._stream_name(persistence_id.entity_type)
        if stream not in self._streams:
            await self._stream(persistence_id.entity_type)
        body = encode_batch(expected_sequence + 1, events, time.time())
        if len(body) > self.client.max_payload - HEADROOM:
            raise PersistenceError(
                f"{persistence_id}: {len(events)} events of {len(body)} bytes do not fit in one message "
                f"(the server's max_payload is {self.client.max_payload}); nothing was written"
            )
        # The writer fence. (No Nats-Expected-Stream: the subject can only be stored in the
        # stream `_stream` checked; nats-py spends 17,000 instructions on each header it sends.)
        headers: dict[str, Any] = {_EXPECTED_LAST: str(known[1])}
        try:
            # A request, as js.publish makes it, read here: js.publish builds a PubAck through
            # dataclasses.fields() per acknowledgement, a third of the client's work per append.
            reply = await self.client.request(
                self._subject(persistence_id), body, timeout=self.timeout, headers=headers
            )
            stream_sequence = acknowledged_sequence(reply.data)
        except nats.js.errors.APIError as error:
            if error.err_code in _WRONG_LAST_SEQUENCE:
                # Read again: another writer's events (it only adds), or `JournalCorrupted` if
                # fewer than this journal stored are there (and at each read after).
                found = (await self._fetch_last(persistence_id))[0]
                raise WriterConflict(str(persistence_id), expected_sequence, found) from None
            self._last.pop(persistence_id, None)
            raise PersistenceError(f"{persistence_id}: append refused: {error}") from error
        except (nats.errors.Error, asyncio.TimeoutError, UnreadableAcknowledgement) as error:
            # No acknowledgement: the server may have stored the batch or not. The next append
            # reads the subject's last message again, so it cannot write after a stale sequence.
            self._last.pop(persistence_id, None)
            raise PersistenceError(
                f"{persistence_id}: no acknowledgement ({error!r}); the events may or may not be stored"
            ) from error
        last = expected_sequence + len(events)
        keep_last(self._last, persistence_id, (last, stream_sequence))
        return last

    async def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        self._check_open()
        last_event, last_stream = await self._fetch_last(persistence_id)
        if last_event <= after:
            return
        stream = await self._stream(persistence_id.entity_type)
        hint = self._hints.get(persistence_id)
        if hint is not None and hint[0] <= after:
            # From the message holding the snapshot's event (its earlier events are skipped
            # below). A start sequence is a consumer's setting: subscribe() takes no such word.
            check_hint(persistence_id, hint, last_stream, None)  # beyond the last: no wait for nothing
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=hint[1])
        else:
            hint = None
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        with failed(persistence_id, "reading the events"):
            subscription = await self._js.subscribe(
                self._subject(persistence_id), stream=stream, ordered_consumer=True, config=config
            )
        expected = 0  # the first event of the next batch, once a batch was read
        try:
            while True:
                with failed(persistence_id, "reading the events"):
                    message = await subscription.next_msg(timeout=self.timeout)
                records = decode_batch(persistence_id, message.data)
                if hint is not None and not expected:
                    check_hint(persistence_id, hint, last_stream, records[0].sequence if records else 0)
                # Batches follow on, from event 1: one that does not (written by someone else)
                # is refused here, even when all its events are before ``after``.
                first = records[0].sequence if records else 0
                if first < 1 or (expected and first != expected):
                    raise JournalCorrupted(
                        f"{persistence_id}: stream message {message.metadata.sequence.stream} holds "
                        f"{len(records)} events from {first}, expected events from {expected or 1}"
                    )
                expected = records[-1].sequence + 1
                for record in records:
                    if record.sequence > after:
                        yield record
                if message.metadata.sequence.stream >= last_stream:
                    return
        finally:
            await end_read(self._js, stream, subscription)

    async def last_sequence(self, persistence_id: PersistenceId) -> int:
        self._check_open()
        return (await self._fetch_last(persistence_id))[0]

    # -- key-value records --------------------------------------------------------------------

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._check_open()
        known = self._last.get(snapshot.persistence_id)
        # Where the snapshot's event is in the stream, if known: recovery reads from there.
        stream_sequence = known[1] if known is not None and known[0] == snapshot.sequence else 0
        head = f"{snapshot.sequence} {snapshot.version} {stream_sequence}\n".encode()
        with failed(snapshot.persistence_id, "saving the snapshot"):
            await self._records.put("snapshots", snapshot.persistence_id, head + snapshot.payload, None)

    async def load_snapshot(self, persistence_id: PersistenceId) -> SnapshotRecord | None:
        self._check_open()
        with failed(persistence_id, "loading the snapshot"):
            found = await self._records.get("snapshots", persistence_id)
        if found is None:
            return None
        head, payload = split_record(persistence_id, found[0], 3)
        sequence, version, stream_sequence = head
        if sequence < 0 or stream_sequence < 0:
            raise JournalCorrupted(f"{persistence_id}: its stored snapshot's head holds a negative number")
        if stream_sequence:
            keep_last(self._hints, persistence_id, (sequence, stream_sequence))
        return SnapshotRecord(persistence_id, sequence, version, payload)

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        self._check_open()
        try:
            value = f"{version}\n".encode() + payload
            with failed(persistence_id, "saving the state (it may or may not be stored)"):
                return await self._records.put("states", persistence_id, value, expected_revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            current = await self.load_state(persistence_id)
            raise WriterConflict(
                str(persistence_id), expected_revision, 0 if current is None else current.revision
            ) from None

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        self._check_open()
        with failed(persistence_id, "loading the state"):
            found = await self._records.get("states", persistence_id)
        if found is None:
            return None
        (version,), payload = split_record(persistence_id, found[0], 1)
        return StateRecord(persistence_id, found[1], version, payload)

    async def save_reminder(self, reminder: ReminderRecord) -> None:
        self._check_open()
        with failed(reminder.persistence_id, "saving a reminder"):
            await save_reminder(self._records, reminder)

    async def delete_reminder(self, persistence_id: PersistenceId, name: str) -> None:
        self._check_open()
        with failed(persistence_id, "deleting a reminder"):
            await delete_reminder(self._records, persistence_id, name)

    async def load_reminders(self, persistence_id: PersistenceId) -> list[ReminderRecord]:
        """The id's reminders, by name (see `load_reminders` of the reminders' module: together
        at most ``max_object`` bytes)."""
        self._check_open()
        with failed(persistence_id, "loading the reminders"):
            return await load_reminders(self._records, persistence_id)

    async def persistence_ids(self) -> list[PersistenceId]:
        """Every id with events, a snapshot, a state or a reminder, sorted, read from every page
        of the server's listings. A subject or key of the journal's streams and buckets that is
        not a persistence id (published there by something else) is `JournalCorrupted` naming
        the stream and the subject; a stream or bucket deleted meanwhile is skipped; another
        journal's, whose prefix begins as this one's, is not read (see `journal_streams`)."""
        self._check_open()
        found: set[PersistenceId] = set()
        with failed("the journal's streams", "listing the streams"), needs_jetstream("the journal's streams"):
            configs = await streams(self.client, self.timeout)
        for stream in journal_streams(self.prefix, configs):
            name, kind, entity_type = stream.name, stream.kind, stream.entity_type
            with failed(name, "listing its subjects"):
                subjects = await stream_subjects(self.client, name, stream.subject_filter, self.timeout)
            if kind == "reminders":  # a key per reminder: <entity id>.<name>
                kept = (subject_id(name, entity_type, stream.subject_prefix, s) for s in subjects or ())
                ids = [i for i in kept if i is not None]
            else:
                ids = [stored_id(name, entity_type, stream.subject_prefix, s) for s in subjects or ()]
            for candidate in dict.fromkeys(ids):
                if candidate not in found and (kind == "events" or await self._present(kind, candidate)):
                    found.add(candidate)
        return sorted(found, key=lambda i: (i.entity_type, i.entity_id))

    async def _present(self, kind: str, persistence_id: PersistenceId) -> bool:
        """Whether the id's key of that kind holds a record (not a delete marker, not {})."""
        if kind == "reminders":
            with failed(persistence_id, "listing the reminders"):
                return await holds_reminders(self._records, persistence_id)
        if kind == "snapshots":
            return await self.load_snapshot(persistence_id) is not None
        return await self.load_state(persistence_id) is not None

    async def close(self) -> None:
        """Forget the streams and buckets; close the connection if the journal made it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self.client.close()
