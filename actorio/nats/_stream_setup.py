"""How a node sets up the JetStream streams it uses (a durable name's, its dead-letter stream, a
durable entity type's): looked for first, and kept as they are when they fit; made when there is
none; updated otherwise. And how it reads the buckets it uses (`leader_read`).

A stream that fits is neither made nor updated, so a node whose streams were made beforehand (by
an operator, with `Node.provision`, or with replicas and placement of the operator's choosing)
needs no right to make or update streams: a right that is, in effect, the right to purge and
delete every stream of the account (docs/nats-security.md).

A stream fits when every setting that decides what it keeps, and for how long, is the one the
node would give it: its subjects, retention, storage, deduplication window, limits and what they
discard, the largest message it takes, and none of the settings through which stored messages
are removed, moved, expire or are acknowledged before they are written (a republish, a subject
transform, sources, a mirror, rollup headers, per-message TTLs, counters, an asynchronous
persistence mode, no acknowledgement), nor limits of its consumers (an inactivity threshold
would delete the durable consumer). The others (replicas, placement, description, compression,
denying deletes and purges) are the operator's: an update changes the deciding settings only,
and keeps them.

The settings are read as nats-py reads them: one the installed nats-py does not know is not
seen (per-message TTLs need nats-py 2.12, the persistence mode 2.13, consumer limits 2.15,
counters 2.16).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.kv import KeyValue

from ..lowlevel import printable
from ._connection import GuardedClient
from ._errors import NO_JETSTREAM, jetstream_missing

__all__ = ["Refused", "bucket_found_or_made", "differences", "leader_read", "made_or_kept", "not_made"]

T = TypeVar("T")

_DECIDING = (
    "subjects",
    "retention",
    "storage",
    "duplicate_window",
    "max_consumers",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msgs_per_subject",
    "max_msg_size",
    "discard",
    "discard_new_per_subject",
    "no_ack",
    "sealed",
    "allow_rollup_hdrs",
    "republish",
    "subject_transform",
    "sources",
    "mirror",
    "allow_msg_ttl",
    "allow_msg_schedules",
    "allow_msg_counter",
    "persist_mode",
    "consumer_limits",
    "subject_delete_marker_ttl",
)
"""The settings a stream must have as the node would give them (read with ``getattr``: a nats-py
older than a setting has no attribute for it, and does not see it)."""

_DEFAULTS = ("limits", "old", "file", "default")
"""The server's defaults of the retention, discard, storage and persistence mode, as nats-py
reads them: the same as a setting the node leaves out."""


def _normal(value: object) -> object:
    """A setting as compared: enums by value, subjects in any order, settings of settings (a
    republish, consumer limits) by the ones that are set, every default as ``None``."""
    value = getattr(value, "value", value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        settings = cast("dict[object, object]", value)
        items = {str(k): _normal(v) for k, v in settings.items()}
        return tuple(sorted((k, repr(v)) for k, v in items.items() if v is not None)) or None
    if isinstance(value, list):
        return tuple(sorted(map(repr, value))) or None  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(value, float):
        value = round(value, 6)  # seconds (nats-py reads the server's nanoseconds)
    if value in (None, 0, -1, False, "") or value in _DEFAULTS:
        return None
    return value


def differences(found: StreamConfig, wanted: StreamConfig, also: tuple[str, ...] = ()) -> list[str]:
    """The settings of the stream ``found`` that decide what it keeps (see the module's docstring;
    ``also``: more settings that do, for this stream) and differ from ``wanted``, and the
    metadata ``wanted`` notes that ``found`` lacks or notes otherwise: each as ``"<setting>
    <found> (wanted <wanted>)"``. An empty list: it fits."""
    changed: list[str] = []
    for name in (*_DECIDING, *also):
        has, wants = getattr(found, name, None), getattr(wanted, name, None)
        if _normal(has) != _normal(wants):
            changed.append(f"{name} {_shown(has)} (wanted {_shown(wants)})")
    notes = found.metadata or {}
    for key, value in (wanted.metadata or {}).items():
        if notes.get(key) != value:
            changed.append(f"metadata {key} {_shown(notes.get(key))} (wanted {_shown(value)})")
    return changed


def _shown(value: object) -> str:
    text = printable(repr(getattr(value, "value", value)))
    return text if len(text) <= 80 else text[:77] + "..."


async def made_or_kept(
    js: JetStreamContext,
    config: StreamConfig,
    what: str,
    *,
    also: tuple[str, ...] = (),
    provision: str = "Node.provision",
) -> None:
    """Make the stream ``config`` describes, keep the one of its name if it fits (`differences`,
    with the settings ``also``), or update its deciding settings to ``config``'s (the operator's
    others are kept), and look again. ``what`` names the stream's use in errors ("a durable
    mailbox"); ``provision``, the method that makes it beforehand.

    Raises ``RuntimeError`` without JetStream; ``ValueError`` if the stream is missing and could
    not be made (the server refused it, or the user's right to make streams), if its metadata
    notes another value than ``config``'s (a durable entity type's shards: never updated), or if
    it exists with other settings and could not be updated (the server refused the change: some,
    like the storage or denied deletes, it never changes; or the user's right), or kept some
    after the update; nats-py's errors for anything else.
    """
    name = config.name
    assert name is not None
    # nats-py leaves ``**params`` unannotated in add_stream and update_stream.
    try:
        try:
            found = (await js.stream_info(name)).config
        except nats.js.errors.NotFoundError:
            try:
                await _answered(js, f"STREAM.CREATE.{name}", js.add_stream(config))  # pyright: ignore[reportUnknownMemberType]
                return
            except nats.js.errors.BadRequestError as error:  # made meanwhile, with other settings?
                try:
                    found = (await js.stream_info(name)).config
                except nats.js.errors.NotFoundError:  # no: refused (another stream's subjects)
                    raise not_made(what, f"stream {name}", error, provision) from None
            except (asyncio.TimeoutError, Refused) as error:  # (nats-py's too) no answer: a right?
                raise not_made(what, f"stream {name}", error, provision) from None
    except NO_JETSTREAM:
        raise jetstream_missing(what) from None
    changed = differences(found, config, also)
    if not changed:
        return
    notes = found.metadata or {}
    conflicts = [
        f"{key} {_shown(notes[key])} (wanted {_shown(value)})"
        for key, value in (config.metadata or {}).items()
        if key in notes and notes[key] != value
    ]
    if conflicts:  # (made meanwhile by another node with other settings: its own are not undone)
        raise ValueError(f"{what}: the stream {name} notes other settings ({', '.join(conflicts)})")
    kept = {key: value for key, value in notes.items() if not key.startswith("_nats.")}
    updated = dataclasses.replace(
        found,
        **{setting: getattr(config, setting) for setting in (*_DECIDING, *also) if hasattr(config, setting)},
        metadata={**kept, **(config.metadata or {})} or None,
    )
    try:
        await _answered(js, f"STREAM.UPDATE.{name}", js.update_stream(updated))  # pyright: ignore[reportUnknownMemberType]
        left = differences((await js.stream_info(name)).config, config, also)
    except (nats.errors.Error, asyncio.TimeoutError) as error:
        hint = f": have it updated by a user that may ({provision})" if _refused(error) else ""
        raise ValueError(
            f"{what}: the stream {name} exists with other settings ({', '.join(changed)}), and it "
            f"could not be updated ({_said(error)}){hint}"
        ) from None
    if left:  # the server keeps some settings on by itself (subject delete markers: TTLs, rollups)
        raise ValueError(
            f"{what}: the stream {name} was updated, but the server kept other settings "
            f"({', '.join(left)}): make it anew"
        )


def not_made(what: str, stream: str, error: BaseException, provision: str) -> ValueError:
    """The error of a ``stream`` (``"stream X"``, ``"bucket Y"``) that is not there and that the
    node could not make (``error``): a user that may make streams should, with ``provision``."""
    return ValueError(
        f"{what}: there is no {stream}, and it could not be made ({_said(error)}): have it made by a "
        f"user that may make streams ({provision})"
    )


def _refused(error: BaseException) -> bool:
    """A request the user may not make: the server said so (`Refused`), or did not answer (it
    answers nothing to one its permissions refuse, and a client that is not actorio's does not
    hear of it)."""
    return isinstance(error, (asyncio.TimeoutError, Refused))


class Refused(nats.errors.Error):
    """The server reported that the user may not make a JetStream API request (a permission
    violation); ``description`` is what it said."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


async def _answered(js: JetStreamContext, api: str, call: Coroutine[Any, Any, T]) -> T:
    """``call``, a request to ``$JS.API.<api>``: its result, or `Refused` as soon as the server
    reports that the user may not publish there, rather than after the request's timeout (5 s
    by default: the server answers nothing to a request it refused). Through a node's client
    only (it hears the server's reports); through another, ``call`` as it is."""
    nc = getattr(js, "_nc", None)  # (nats-py's; every version since 2.0)
    if not isinstance(nc, GuardedClient):
        return await call
    prefix = getattr(js, "_prefix", "$JS.API")
    with nc.refusal(f"{prefix}.{api}") as refusal:
        request = asyncio.ensure_future(call)
        try:
            either: list[asyncio.Future[Any]] = [request, refusal]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():
                request.cancel()  # (refused, or the caller cancelled)
        if request.done():
            return request.result()
        raise Refused(refusal.result())


def _said(error: BaseException) -> str:
    """What the server said of a refused request (its description), or "no answer", within
    bounds."""
    if isinstance(error, asyncio.TimeoutError):
        return "no answer: the user may lack the right"
    description = getattr(error, "description", None)
    return printable(str(description) if description else repr(error))[:200]


def leader_read(js: JetStreamContext, name: str) -> KeyValue:
    """The bucket ``name`` (found or made), reading its keys through its stream's leader
    (``STREAM.MSG.GET``) even where it allows direct reads, as the buckets other NATS clients
    make do by default: any replica may answer a direct read, one that is behind too, and it
    needs a right (``$JS.API.DIRECT.GET``) that the example configuration's users are not
    given."""
    return KeyValue(name=name, stream=f"KV_{name}", pre=f"$KV.{name}.", js=js, direct=False)


async def bucket_found_or_made(
    js: JetStreamContext, name: str, what: str, make: dict[str, Any] | None
) -> KeyValue:
    """The bucket ``name`` (``what`` names its use in errors), found, or made with the settings
    ``make`` (``create_key_value``'s) if it is missing; read through its leader (`leader_read`).

    Raises nats-py's ``BucketNotFoundError`` if it is missing and ``make`` is None,
    ``ValueError`` if it could not be made (the server did not answer: the user may lack the
    right), what nats-py raises otherwise.
    """
    try:
        await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        if make is None:
            raise
        try:
            # nats-py leaves ``**params`` of create_key_value() unannotated.
            made = js.create_key_value(bucket=name, **make)  # pyright: ignore[reportUnknownMemberType]
            await _answered(js, f"STREAM.CREATE.KV_{name}", made)
        except (asyncio.TimeoutError, Refused) as error:  # (nats-py's too) no answer: a right?
            raise not_made(what, f"bucket {name}", error, "Node.provision_entities") from None
    return leader_read(js, name)
