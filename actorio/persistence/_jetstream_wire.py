"""What the JetStream journal reads from the server and its buckets, all of it checked: a publish
acknowledgement, a stored value's header line, a key's delete marker, whether a stream's subject
filter covers the journal's subjects and its settings keep what is stored, stored reminders and
subjects, a snapshot's hint; and nats-py's errors said as `PersistenceError`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

import nats.errors
import nats.js.errors
from nats.js.api import StreamConfig
from nats.js.kv import KeyValue

from actorio.lowlevel import shorten

from ._errors import JournalCorrupted, PersistenceError
from ._records import PersistenceId

T = TypeVar("T")

__all__ = [
    "UnreadableAcknowledgement",
    "acknowledged_sequence",
    "check_hint",
    "check_kept",
    "deleted_at",
    "dropping_limits",
    "failed",
    "filter_covers",
    "found_or_made",
    "needs_jetstream",
    "removal_routes",
    "split_record",
    "stored_id",
]


async def deleted_at(bucket: KeyValue, key: str) -> int | None:
    """The revision of ``key``'s delete or purge marker, if that is its last entry; else ``None``."""
    try:
        await bucket.get(key)
    except nats.js.errors.KeyNotFoundError as error:  # nats-py gives a marker's entry with it
        revision = getattr(getattr(error, "entry", None), "revision", None)
        return revision if type(revision) is int and revision > 0 else None
    return None


@contextlib.contextmanager
def needs_jetstream(name: str) -> Generator[None, None, None]:
    """Turn nats-py's errors for a server without JetStream into a `PersistenceError` saying so."""
    try:
        yield
    except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
        raise PersistenceError(
            "the JetStream journal needs JetStream, which the server does not offer (start "
            f"nats-server with -js, or with jetstream {{}} in its configuration file; seen at {name})"
        ) from None


@contextlib.contextmanager
def failed(persistence_id: PersistenceId | str, what: str) -> Generator[None, None, None]:
    """nats-py's errors (no answer in time, a lost connection, a refusal) as `PersistenceError`,
    which the persistent actors handle (read back, roll back): not as nats-py's own types."""
    try:
        yield
    except nats.js.errors.KeyWrongLastSequenceError:
        raise  # a conflict, which the caller turns into WriterConflict (or tries again)
    except (nats.errors.Error, asyncio.TimeoutError) as error:
        raise PersistenceError(f"{persistence_id}: {what} failed ({error!r})") from error


async def found_or_made(
    find: Callable[[], Awaitable[T]], make: Callable[[], Awaitable[T]], absent: type[BaseException]
) -> T:
    """What ``find()`` gives (a stream, bucket or object store, checked); if it raises
    ``absent`` (there is none), what ``make()`` makes. Looked for first, so that a journal whose
    user may not make streams works on those made beforehand. One made meanwhile by someone
    else, with other settings, makes ``make()`` refused: then it is found (and checked), or, if
    it is not there, the refusal is raised."""
    try:
        return await find()
    except absent:
        pass
    try:
        return await make()
    except nats.js.errors.BadRequestError as refused:
        try:
            return await find()
        except absent:
            raise refused from None


def check_kept(
    name: str, what: str, config: StreamConfig, *, per_subject: bool = False, rollups: bool = True
) -> None:
    """`PersistenceError` for a stream, bucket or object store made beforehand whose settings
    (``config``) delete what is stored (see `dropping_limits`: ``per_subject`` checks the limit
    per subject too), or let whoever may publish to it have it removed or moved (see
    `removal_routes`: ``rollups`` says whether rollup headers are expected): acknowledged records
    would be lost without a word."""
    dropping = dropping_limits(config, per_subject=per_subject)
    if dropping:
        raise PersistenceError(
            f"{name}: its settings delete stored {what} by themselves ({', '.join(dropping)}), "
            "which would lose what was acknowledged; give the journal a stream without them"
        )
    routes = removal_routes(config, rollups=rollups)
    if routes:
        raise PersistenceError(
            f"{name}: its settings would let the journal's records be removed, or be stored where "
            f"it does not read them ({', '.join(routes)}); give the journal a stream without them"
        )


def removal_routes(config: StreamConfig, *, rollups: bool) -> list[str]:
    """The settings of a stream through which what it stores can be removed, or stored where
    the journal does not read it: a republish whose destination starts with ``$`` or with a
    mapping function (the server then publishes there with its own rights: to
    ``$JS.API.STREAM.DELETE.<stream>``, say), a subject transform, sources or a mirror,
    unless ``rollups`` (a bucket or an object store takes them by design) rollup headers, and
    message counters (under which the server refuses any other record). An empty list: none."""
    found: list[str] = []
    destination = getattr(config.republish, "dest", None)
    if isinstance(destination, str):
        first = destination.split(".", 1)[0].strip()
        if first.startswith("$") or "{{" in first:
            found.append(f"republish to {shorten(destination)}")
    if config.subject_transform is not None:
        found.append("a subject transform")
    if config.sources:
        found.append("sources")
    if config.mirror is not None:
        found.append("a mirror")
    if not rollups and config.allow_rollup_hdrs:
        found.append("allow_rollup_hdrs")
    if getattr(config, "allow_msg_counter", False):
        found.append("allow_msg_counter (it refuses every record but a counter's)")
    return found


def dropping_limits(config: StreamConfig, *, per_subject: bool) -> list[str]:
    """The settings of a stream (or a bucket's) under which the server deletes stored messages by
    itself: storage other than files, a persistence mode that acknowledges before writing,
    a retention other than limits, a maximum age, a maximum of
    messages or bytes discarding the oldest, and where ``per_subject`` (a bucket keeps one value
    a key by design) a maximum per subject, unless the newest are discarded per subject. An
    empty list: nothing acknowledged is deleted but on request."""
    found: list[str] = []
    storage = getattr(config.storage, "value", config.storage)
    if storage not in (None, "file"):
        found.append(f"{storage} storage (lost when the server restarts)")
    mode = getattr(config, "persist_mode", None)  # (a nats-py older than the setting drops it)
    mode = getattr(mode, "value", mode)
    if mode not in (None, "default"):
        found.append(f"persist_mode {shorten(str(mode))} (acknowledged before it is written)")
    retention = getattr(config.retention, "value", config.retention)
    if retention not in (None, "limits"):
        found.append(f"retention {retention}")
    if config.max_age:
        found.append(f"max_age {config.max_age:g} s")
    discard_old = getattr(config.discard, "value", config.discard) in (None, "old")
    if discard_old:
        limits = [("max_msgs", config.max_msgs), ("max_bytes", config.max_bytes)]
        found += [f"{name} {value} with discard old" for name, value in limits if value and value > 0]
    # A subject's oldest message goes under discard new too, unless discard_new_per_subject.
    per = config.max_msgs_per_subject
    if (
        per_subject
        and per
        and per > 0
        and (discard_old or not getattr(config, "discard_new_per_subject", False))
    ):
        found.append(f"max_msgs_per_subject {per}" + (" with discard old" if discard_old else ""))
    return found


class UnreadableAcknowledgement(Exception):
    """An acknowledgement that says neither a stream sequence nor an error."""


def acknowledged_sequence(data: bytes) -> int:
    """The stream sequence in a publish acknowledgement; the server's `APIError` if it refused;
    `UnreadableAcknowledgement` for anything else (bounded: the text is not quoted)."""
    try:
        found: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise UnreadableAcknowledgement(f"not JSON ({len(data)} bytes)") from None
    if not isinstance(found, dict):
        raise UnreadableAcknowledgement("not an object")
    answer = cast("dict[str, Any]", found)
    error = answer.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise UnreadableAcknowledgement("an error that is not an object")
        fields = cast("dict[str, Any]", error)
        code, err_code, description = fields.get("code"), fields.get("err_code"), fields.get("description")
        raise nats.js.errors.APIError(
            code=code if type(code) is int else None,
            err_code=err_code if type(err_code) is int else None,
            description=None if description is None else str(description)[:500],
        )
    sequence = answer.get("seq")
    if type(sequence) is not int or sequence < 1:
        raise UnreadableAcknowledgement("no stream sequence")
    return sequence


def filter_covers(subject_filter: str, pattern: str) -> bool:
    """Whether a stream's subject filter takes every subject ``pattern`` (a subject whose tokens
    may be ``*``) takes: a ``*`` of the filter takes any one token, a ``>`` the rest."""
    wanted = pattern.split(".")
    for index, token in enumerate(subject_filter.split(".")):
        if token == ">":
            return index < len(wanted)
        if index >= len(wanted) or (token != "*" and token != wanted[index]):
            return False
    return len(subject_filter.split(".")) == len(wanted)


def split_record(persistence_id: PersistenceId, value: bytes, fields: int) -> tuple[list[int], bytes]:
    """A stored value's header line of ``fields`` integers, and the payload after it."""
    try:
        head, payload = value.split(b"\n", 1)
        numbers = [int(field) for field in head.split()]
        if len(numbers) != fields:
            raise ValueError(f"{len(numbers)} fields")
    except ValueError as error:
        raise JournalCorrupted(f"{persistence_id}: a stored value is not a record ({error})") from None
    return numbers, payload


def stored_id(stream: str, entity_type: str, subject_prefix: str, subject: str) -> PersistenceId:
    """The persistence id a subject of one of the journal's streams stands for (``subject`` is
    ``subject_prefix`` then the entity id); `JournalCorrupted` naming the stream and the subject
    (bounded) for one that is not of that form or names no valid id."""
    try:
        if not subject.startswith(subject_prefix):
            raise ValueError(f"not a subject under {subject_prefix}*")
        return PersistenceId(entity_type, subject[len(subject_prefix) :])
    except ValueError as error:
        raise JournalCorrupted(
            f"{stream}: the stored subject {shorten(repr(subject))} is not a persistence id's ({error})"
        ) from None


STREAM_NOT_FOUND = 10059
"""JetStream's error code for a stream that does not exist."""


def check_bucket_not_gone(persistence_id: PersistenceId, bucket: str, error: BaseException) -> None:
    """After nats-py's ``KeyNotFoundError`` for ``persistence_id``'s key: `PersistenceError` if
    the bucket itself is gone (deleted since the journal made or found it: its state or its
    reminders would read as none). Else nothing: the key holds nothing."""
    cause = error.__context__
    if getattr(cause, "err_code", None) == STREAM_NOT_FOUND:  # (a deleted key's error has none)
        raise PersistenceError(
            f"{persistence_id}: the bucket {bucket} is gone (deleted by someone else since this journal "
            "made or found it); what it held cannot be read, and nothing is written"
        )


def check_not_gone(
    persistence_id: PersistenceId,
    stream: str,
    error: nats.js.errors.NotFoundError,
    known: tuple[int, int] | None,
) -> None:
    """After nats-py's ``NotFoundError`` for the last event of ``persistence_id``: a
    `PersistenceError` if the stream itself is gone (deleted since the journal made or found it:
    its history would read as empty, and every append fail), and `JournalCorrupted` if this
    journal ``known`` a last event there (a journal never removes events: someone purged or
    deleted them). Else nothing: the id has no events yet."""
    if error.err_code == STREAM_NOT_FOUND:
        raise PersistenceError(
            f"{persistence_id}: the stream {stream} is gone (deleted by someone else since this journal "
            "made or found it); what it held cannot be read, and nothing is written"
        )
    if known is not None and known[0] > 0:
        raise events_gone(persistence_id, stream, 0, known[0])


def events_gone(persistence_id: PersistenceId, stream: str, found: int, known: int) -> JournalCorrupted:
    """The error for an id whose last event in ``stream`` is ``found`` where this journal knows
    that ``known``, a later one, was stored: a journal never removes events, so someone purged
    or deleted them (an acknowledged event lost, not another writer's, which only adds)."""
    return JournalCorrupted(
        f"{persistence_id}: its events {found + 1} to {known} are gone from the stream {stream} "
        "(purged or deleted by someone else)"
    )


def foreign_last(
    persistence_id: PersistenceId, stream: str, stream_sequence: int, found: int, known: int
) -> JournalCorrupted:
    """The error for an id whose last message in ``stream`` (``stream_sequence``, later than the
    one that held its event ``known``) ends at an earlier event, ``found``: a journal's append
    only continues the id's events (its writer fence), so someone else wrote that message, or
    removed the events before it first."""
    return JournalCorrupted(
        f"{persistence_id}: the stream {stream}'s message {stream_sequence}, stored after its event "
        f"{known}, ends at event {found}: written by someone else (a journal's append continues the "
        "events), or after someone removed events"
    )


def check_hint(
    persistence_id: PersistenceId, hint: tuple[int, int], last_stream: int, first: int | None
) -> None:
    """`JournalCorrupted` for a snapshot's hint (its event's sequence, and the stream message
    said to hold that event) that cannot be right: a message beyond the id's last one
    (``last_stream``: reading from there would wait in vain), or one whose batch begins after
    the event (``first``, once read: the events before it would be skipped)."""
    sequence, stream_sequence = hint
    if stream_sequence > last_stream or (first is not None and first > sequence):
        found = f"beyond the id's last, {last_stream}" if first is None else f"whose events begin at {first}"
        raise JournalCorrupted(
            f"{persistence_id}: its stored snapshot says event {sequence} is in stream message "
            f"{stream_sequence}, {found}: the snapshot's record is not the journal's"
        )
