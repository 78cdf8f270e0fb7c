"""How the JetStream journal reads an object of its object store: the object's stored info
checked first (its size within the journal's limit, no link, chunks that exist), then its
chunks read by the journal itself, each wait bounded by the journal's timeout, the digest
checked, and the consumer removed however the read ends."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import re
import uuid
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.js.api import ObjectInfo, ObjectMetaOptions
from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError
from ._records import PersistenceId

__all__ = ["POINTER", "end_read", "object_name", "pointed_object", "read_object"]

POINTER = b"@object "
"""A key's value that starts so names the object (in the entity type's object store) holding the
real value. No stored record starts with ``@``: a state, a snapshot and a reminder start with
a digit (a reminder's due time; a negative one with ``-``)."""
_UNIQUE = re.compile("[0-9a-f]{32}")
"""The end of an object's name: a uuid's hex."""


def object_name(kind: str, key: str) -> str:
    """A new object's name, for the value of the key ``key`` of the bucket of that kind: never
    reused, and telling whose it is (`pointed_object` checks it)."""
    return f"{kind}.{key}.{uuid.uuid4().hex}"


def pointed_object(kind: str, persistence_id: PersistenceId, key: str, value: bytes) -> str | None:
    """The object a key's value names (``None``: the value is the record itself);
    `JournalCorrupted` for a name `object_name` does not give that key's objects (reading it
    would give another record, and replacing it would remove that record's object)."""
    if not value.startswith(POINTER):
        return None
    name = value[len(POINTER) :].decode(errors="replace")
    prefix = f"{kind}.{key}."
    if not (name.startswith(prefix) and _UNIQUE.fullmatch(name[len(prefix) :])):
        raise JournalCorrupted(f"{persistence_id}: its {kind} key names another record's object")
    return name


_NUID = re.compile("[0-9A-Za-z]{1,64}")
"""A chunk subject's last token as nats clients make it (a NUID): no ``.``, ``*`` or ``>``."""
_DIGEST = "SHA-256="


async def end_read(js: JetStreamContext, stream: str, subscription: Any) -> None:
    """End a read: unsubscribe, and delete its consumer on the server, which would otherwise
    stay there for seconds after each read (a stream takes a limited number of consumers:
    a thousand recoveries at once would be refused). A failure leaves it to expire."""
    consumer = getattr(subscription, "_consumer", None)  # nats-py keeps its name there
    with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
        await subscription.unsubscribe()
        if isinstance(consumer, str) and consumer:
            await js.delete_consumer(stream, consumer)


async def read_object(
    js: JetStreamContext, store: ObjectStore, bucket: str, name: str, *, limit: int, what: str, timeout: float
) -> bytes:
    """The object ``name`` of the object store ``bucket`` (``store``), if its stored size is at
    most ``limit`` bytes: else `PersistenceError` saying ``what`` it holds and its size, before
    anything of it is read. Stored info the journal never writes (a link, a size that is not a
    positive integer, no digest, chunks that are not there) is `JournalCorrupted`, and so are
    chunks holding more or less than it says or bytes whose digest is not its. Each chunk is
    awaited at most ``timeout`` seconds (`PersistenceError`); the read's consumer is removed
    however it ends. nats-py's `ObjectNotFoundError`: no such object (or removed meanwhile)."""
    try:
        info = await store.get_info(name)
    except nats.js.errors.BadObjectMetaError:
        raise JournalCorrupted(
            f"{what}: the stored info of its object {shorten(repr(name))} is not one"
        ) from None
    size, chunks, nuid, digest = _checked(info, name, what)
    if size > limit:
        raise PersistenceError(
            f"{what}: its object {shorten(repr(name))} is {size} bytes, more than max_object ({limit}): "
            "not read"
        )
    stream, subject = f"OBJ_{bucket}", f"$O.{bucket}.C.{nuid}"
    detail = await js.stream_info(stream, subjects_filter=subject)
    if (detail.state.subjects or {}).get(subject, 0) < chunks:
        await store.get_info(name)  # removed meanwhile (its chunks with it): ObjectNotFoundError
        raise JournalCorrupted(f"{what}: its object {shorten(repr(name))} lacks chunks its stored info names")
    subscription = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    try:
        data = bytearray()
        for _ in range(chunks):
            message = await _next_chunk(subscription, store, name, timeout, what)
            if len(data) + len(message.data) > size:
                raise JournalCorrupted(f"{what}: its object holds more than its stored size says")
            data += message.data
    finally:
        await end_read(js, stream, subscription)
    if len(data) != size:
        raise JournalCorrupted(f"{what}: its object holds less than its stored size says")
    if hashlib.sha256(data).digest() != digest:
        raise JournalCorrupted(f"{what}: its object's bytes do not match its stored digest")
    return bytes(data)


RECHECK = 0.2
"""Seconds a chunk is awaited before the object is looked up again: removed meanwhile (its key
replaced by another writer), its chunks never come, and the read starts again at once."""


async def _next_chunk(subscription: Any, store: ObjectStore, name: str, timeout: float, what: str) -> Any:
    """The next chunk, within ``timeout`` seconds (`PersistenceError`); nats-py's
    `ObjectNotFoundError` as soon as the object is found removed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await subscription.next_msg(timeout=max(min(deadline - loop.time(), RECHECK), 0.001))
        except nats.errors.TimeoutError:
            await store.get_info(name)  # removed while read: ObjectNotFoundError
            if loop.time() >= deadline:
                raise PersistenceError(
                    f"{what}: reading its object {shorten(repr(name))} took more than {timeout:g} s a chunk"
                ) from None


def _checked(info: ObjectInfo, name: str, what: str) -> tuple[int, int, str, bytes]:
    """The size, chunk count, chunk subject token and digest of an object's stored info, each
    as the journal's writes make it; else `JournalCorrupted` saying which is not."""

    def corrupted(problem: str) -> JournalCorrupted:
        return JournalCorrupted(f"{what}: its object {shorten(repr(name))} {problem}")

    # As stored: of any type, whatever nats-py's annotations say.
    size, chunks, nuid, digest = (
        cast("object", field) for field in (info.size, info.chunks, info.nuid, info.digest)
    )
    options = cast("object", info.options)
    if options is not None and not isinstance(options, ObjectMetaOptions):
        raise corrupted(f"has stored options {shorten(repr(options))}, not of an object's form")
    if info.is_link():
        raise corrupted("is a link, which the journal never writes")
    if type(size) is not int or size < 1:  # the journal writes no empty object
        raise corrupted(f"has a stored size of {shorten(repr(size))}, not a positive integer")
    if type(chunks) is not int or not 1 <= chunks <= size:
        raise corrupted(f"has a stored chunk count of {shorten(repr(chunks))}, not one from 1 to its size")
    if not isinstance(nuid, str) or not _NUID.fullmatch(nuid):
        raise corrupted(f"names chunks {shorten(repr(nuid))}, not a chunk subject's token")
    expected = b""
    if isinstance(digest, str) and digest.startswith(_DIGEST):
        with contextlib.suppress(binascii.Error, ValueError):
            expected = base64.urlsafe_b64decode(digest[len(_DIGEST) :])
    if len(expected) != hashlib.sha256().digest_size:
        raise corrupted(f"has a stored digest of {shorten(repr(digest))}, not a SHA-256")
    return size, chunks, nuid, expected
