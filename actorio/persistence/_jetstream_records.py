"""`KeyRecords`: how a `JetStreamJournal` keeps its key-value records (snapshots, durable
states, reminders): a key per record in the bucket ``<prefix>_<kind>_<type>``, its value in the
key or, larger than one message, in the object store ``<prefix>_objects_<type>`` with the key
naming the object. The key stays the point of optimistic concurrency: the object is written
first, then the key; the object of a write the server refused, or of a value since replaced, is
removed. The buckets and object stores are made on first use (or checked, if they exist)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError
from ._jetstream_ids import bucket_description, bucket_is_ours
from ._jetstream_objects import POINTER, object_name, pointed_object, read_object
from ._jetstream_wire import check_bucket_not_gone, check_kept, deleted_at, found_or_made, needs_jetstream
from ._records import PersistenceId

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from ._jetstream import JetStreamJournal

__all__ = ["HEADROOM", "KeyRecords"]

_READS = 5
"""Objects of a key read, each found replaced as it was read, before giving up (see `get`)."""
HEADROOM = 4096
"""Bytes of a key-value message kept for its subject and headers: a value larger than the
server's ``max_payload`` less this goes to the object store."""


@contextlib.contextmanager
def unopened(name: str) -> Generator[None, None, None]:
    """Where the bucket or object store ``name`` is made or checked: nats-py's errors (no answer,
    a refusal) as `PersistenceError` naming it."""
    try:
        yield
    except (nats.errors.Error, asyncio.TimeoutError) as error:
        raise PersistenceError(f"{name}: could not be made or checked ({error!r})") from error


@contextlib.contextmanager
def opening(persistence_id: PersistenceId) -> Generator[None, None, None]:
    """Where a write opens its bucket or object store: a failure there is a `PersistenceError`
    saying that nothing was written."""
    try:
        yield
    except PersistenceError as error:
        raise PersistenceError(f"{persistence_id}: {error}; nothing was written") from error


def leader_read(js: JetStreamContext, name: str) -> KeyValue:
    """The bucket ``name`` (found or made), reading its keys through its stream's leader
    (``STREAM.MSG.GET``) even where the bucket allows direct reads, as the buckets other NATS
    clients make do by default: any replica may answer a direct read, one that is behind too,
    and it needs a right (``$JS.API.DIRECT.GET``) that the journal's user is not given
    (docs/nats-security.md)."""
    return KeyValue(name=name, stream=f"KV_{name}", pre=f"$KV.{name}.", js=js, direct=False)


class KeyRecords:
    """The key-value records of one journal (see the module), read with its settings: its
    prefix, replicas, timeout, ``max_inline`` and ``max_object``, as they are when used."""

    def __init__(self, journal: JetStreamJournal) -> None:
        self.journal = journal
        self.js = journal.client.jetstream(timeout=journal.timeout)  # pyright: ignore[reportUnknownMemberType]
        self.buckets: dict[str, KeyValue] = {}
        self.object_stores: dict[str, ObjectStore] = {}
        self.objects: dict[tuple[str, PersistenceId, str], str] = {}
        """(kind, id, key) -> the object holding that key's value, as last read or written here."""

    def name(self, kind: str, entity_type: str) -> str:
        """The name of the bucket of that kind of records of ``entity_type`` (``objects``: its
        object store): ``<prefix>_<kind>_<type>``."""
        return f"{self.journal.prefix}_{kind}_{entity_type}"

    async def bucket(self, kind: str, entity_type: str) -> KeyValue:
        """The bucket of that kind of records of ``entity_type`` (made, or checked, once);
        `PersistenceError` naming it if it can be neither."""
        name = self.name(kind, entity_type)
        bucket = self.buckets.get(name)
        if bucket is None:
            with unopened(name):
                bucket = await self._open_bucket(name, kind, entity_type)
            self.buckets[name] = bucket
        return bucket

    def forget(self, entity_type: str) -> None:
        """Forget that the buckets and object store of ``entity_type`` were made or checked."""
        for kind in ("snapshots", "states", "reminders"):
            self.buckets.pop(self.name(kind, entity_type), None)
        self.object_stores.pop(self.name("objects", entity_type), None)

    async def _open_bucket(self, name: str, kind: str, entity_type: str) -> KeyValue:
        async def made() -> KeyValue:
            config = KeyValueConfig(
                bucket=name,
                description=bucket_description(self.journal.prefix, kind, entity_type),
                history=1,
                storage=StorageType.FILE,
                replicas=self.journal.replicas,
            )
            await self.js.create_key_value(config)  # pyright: ignore[reportUnknownMemberType]
            return leader_read(self.js, name)

        return await found_or_made(
            lambda: self._found_bucket(name, kind, entity_type), made, nats.js.errors.BucketNotFoundError
        )

    async def _found_bucket(self, name: str, kind: str, entity_type: str) -> KeyValue:
        """The bucket ``name``, if there is one fit for the journal's records (else
        `PersistenceError`); `BucketNotFoundError` if there is none."""
        with needs_jetstream(name):
            await self.js.key_value(name)  # (BucketNotFoundError if there is none)
            bucket = leader_read(self.js, name)
        config = (await bucket.status()).stream_info.config
        if not bucket_is_ours(self.journal.prefix, kind, entity_type, config.description):
            raise PersistenceError(
                f"{name}: the bucket is another journal's ({shorten(repr(config.description))}), "
                f"whose prefix and entity type make the same name as {self.journal.prefix!r} and "
                f"{entity_type!r}: give one of the journals another prefix"
            )
        check_kept(name, kind, config)
        return bucket

    async def object_store(self, entity_type: str) -> ObjectStore:
        """The object store of ``entity_type`` (made, or checked, once); `PersistenceError`
        naming it if it can be neither."""
        name = self.name("objects", entity_type)
        store = self.object_stores.get(name)
        if store is None:
            config = ObjectStoreConfig(storage=StorageType.FILE, replicas=self.journal.replicas)
            with unopened(name):
                store = await found_or_made(
                    lambda: self._found_object_store(name),
                    lambda: self.js.create_object_store(name, config),  # pyright: ignore[reportUnknownMemberType]
                    nats.js.errors.BucketNotFoundError,
                )
            self.object_stores[name] = store
        return store

    async def _found_object_store(self, name: str) -> ObjectStore:
        """The object store ``name``, if there is one fit for the journal's records (else
        `PersistenceError`); `BucketNotFoundError` if there is none."""
        with needs_jetstream(name):
            store = await self.js.object_store(name)
        check_kept(name, "objects", (await store.status()).stream_info.config, per_subject=True)
        return store

    def inline_limit(self) -> int:
        """The largest value kept in a key itself."""
        if self.journal.max_inline is not None:
            return self.journal.max_inline
        return self.journal.client.max_payload - HEADROOM

    async def get(
        self, kind: str, persistence_id: PersistenceId, key: str | None = None
    ) -> tuple[bytes, int] | None:
        """A key's value (read from the object store if the key names an object) and revision.
        The key is the entity id, unless ``key`` names another (a reminder's).

        An object gone as it is read was replaced since the key was read (a writer removes the
        object of the value it replaced): the key is read again, and its object, up to `_READS`
        times. `JournalCorrupted` if the key names again an object found gone (names are never
        reused: it is missing); `PersistenceError` if each of `_READS` objects was gone and the
        key named another one after it (replaced faster than it is read)."""
        bucket = await self.bucket(kind, persistence_id.entity_type)
        key = key or persistence_id.entity_id
        gone: str | None = None  # the object found gone at the last read (names are never reused)
        for read in range(_READS + 1):
            try:
                entry = await bucket.get(key)
            except nats.js.errors.KeyNotFoundError as error:
                check_bucket_not_gone(persistence_id, self.name(kind, persistence_id.entity_type), error)
                return None
            value, revision = entry.value or b"", entry.revision or 0
            name = pointed_object(kind, persistence_id, key, value)
            if name is None:
                return value, revision
            if name == gone:
                raise JournalCorrupted(f"{persistence_id}: the object {name!r} holding its {kind} is missing")
            if read == _READS:  # read only to tell a replaced object from a missing one
                break
            store = await self.object_store(persistence_id.entity_type)
            bucket_name = self.name("objects", persistence_id.entity_type)
            what = f"{persistence_id}: its {kind}"
            known = self.objects.get((kind, persistence_id, key))
            try:
                found = await read_object(
                    self.js,
                    store,
                    bucket_name,
                    name,
                    limit=self.journal.max_object,
                    what=what,
                    timeout=self.journal.timeout,
                )
            except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
                gone = name
                continue  # replaced (and its object removed) since the key was read: again
            if self.objects.get((kind, persistence_id, key)) == known:  # (not written here meanwhile)
                self.objects[(kind, persistence_id, key)] = name
            return found, revision
        raise PersistenceError(
            f"{persistence_id}: its {kind} record was replaced at each of {_READS} reads; nothing read, "
            "try again"
        )

    async def put(
        self, kind: str, persistence_id: PersistenceId, value: bytes, last: int | None, key: str | None = None
    ) -> int:
        """Write a key (if its revision is ``last``, unless ``None``; the entity id unless ``key``
        names another); a value too large for one message goes to the object store first, and
        the key names it. Returns the revision. A bucket or object store that cannot be made or
        checked is `PersistenceError` saying nothing was written."""
        bucket = self.buckets.get(self.name(kind, persistence_id.entity_type))
        if bucket is None:  # (once: then kept)
            with opening(persistence_id):
                bucket = await self.bucket(kind, persistence_id.entity_type)
        key = key or persistence_id.entity_id
        name: str | None = None
        if len(value) > self.journal.max_object:
            raise PersistenceError(
                f"{persistence_id}: its {kind} of {len(value)} bytes is larger than max_object "
                f"({self.journal.max_object}); nothing was written"
            )
        if len(value) > self.inline_limit():
            name = object_name(kind, key)
            with opening(persistence_id):
                store = await self.object_store(persistence_id.entity_type)
            await store.put(name, value)
            value = POINTER + name.encode()
        try:
            if last is None:
                revision = await bucket.put(key, value)
            else:
                try:
                    revision = await bucket.update(key, value, last=last)
                except nats.js.errors.KeyWrongLastSequenceError:
                    # Nothing stored (0) reads the same as a key deleted or purged by someone
                    # else, whose marker is its last revision: write after the marker.
                    marker = await deleted_at(bucket, key) if last == 0 else None
                    if marker is None:
                        raise
                    revision = await bucket.update(key, value, last=marker)
        except (nats.js.errors.APIError, nats.errors.NoRespondersError):  # refused: not stored
            # (Any other end, a timeout, a lost connection, a cancellation, leaves the write
            # unsure: the key may name the object now, so it stays, unread if not stored.)
            if name is not None:
                await self.remove_object(persistence_id, name)
            raise
        previous = self.objects.pop((kind, persistence_id, key), None)
        if name is not None:
            self.objects[(kind, persistence_id, key)] = name
        if previous is not None and previous != name:
            await self.remove_object(persistence_id, previous)
        return revision

    async def remove_object(self, persistence_id: PersistenceId, name: str) -> None:
        """Remove an object no key names any more; if that fails, it stays (nothing reads it)."""
        store = await self.object_store(persistence_id.entity_type)
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await store.delete(name)
