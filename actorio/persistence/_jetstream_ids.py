"""What `JetStreamJournal.persistence_ids` reads of the server, all of it: the streams page by
page (the server lists at most 256 at a time) and each stream's subjects page by page (at most
100,000 at a time), where nats-py asks for the first page only; which of those streams and
buckets are the journal's, not another journal's whose prefix begins as its own; and the
description that says whose a bucket is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

from nats.aio.client import Client

from actorio.lowlevel import shorten

from ._errors import PersistenceError
from ._jetstream_wire import STREAM_NOT_FOUND, filter_covers

__all__ = [
    "JournalStream",
    "bucket_description",
    "bucket_is_ours",
    "journal_streams",
    "stream_subjects",
    "streams",
]

_API = "$JS.API"
_KINDS = ("reminders", "snapshots", "states")
_DESCRIBED = "actorio journal "


class JournalStream(NamedTuple):
    """One of the journal's streams: its name, what it holds (``events`` or a bucket's kind), its
    entity type, the subjects of its ids, and what comes before an entity id in such a subject."""

    name: str
    kind: str
    entity_type: str
    subject_filter: str
    subject_prefix: str


def bucket_description(prefix: str, kind: str, entity_type: str) -> str:
    """The description a journal gives the buckets it makes: whose, and of what. A bucket's name
    alone does not say it (``a`` + ``states`` + ``b_states_c`` and ``a_states_b`` + ``states`` +
    ``c`` make one name), so that a journal need not take another's bucket for its own."""
    return f"{_DESCRIBED}{prefix}: {kind} of entity type {entity_type}"


def bucket_is_ours(prefix: str, kind: str, entity_type: str, description: object) -> bool:
    """Whether the bucket of that name is this journal's: unless its description is another
    journal's (a bucket made beforehand, or by a journal before descriptions, is taken by name)."""
    if not isinstance(description, str) or not description.startswith(_DESCRIBED):
        return True
    return description == bucket_description(prefix, kind, entity_type)


async def _request(
    client: Client, subject: str, body: dict[str, Any], timeout: float
) -> dict[str, Any] | None:
    """The server's answer to a JetStream API request; ``None`` for a stream that is not found
    (deleted since it was listed); `PersistenceError` for another error or an unreadable answer.
    nats-py's errors are raised as they are."""
    reply = await client.request(f"{_API}.{subject}", json.dumps(body).encode(), timeout=timeout)
    try:
        answer: Any = json.loads(reply.data)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        raise PersistenceError(
            f"{subject}: the server's answer is not a JSON object ({len(reply.data)} bytes)"
        )
    found = cast("dict[str, Any]", answer)
    error = found.get("error")
    if _field(error, "err_code") == STREAM_NOT_FOUND:
        return None
    if error is not None:
        raise PersistenceError(f"{subject}: the server refused ({shorten(repr(error))})")
    return found


def _field(value: object, key: str) -> object:
    """``value[key]`` if ``value`` is a dict holding it, else ``None``."""
    return cast("dict[str, object]", value).get(key) if isinstance(value, dict) else None


def _next_offset(subject: str, answer: dict[str, Any], offset: int, taken: int) -> int | None:
    """The offset of the next page after one of ``taken`` items at ``offset``; ``None`` once the
    server's ``total`` is reached. A page that brings nothing before then is `PersistenceError`
    (the list would be partial)."""
    total = answer.get("total", 0)
    if type(total) is not int:
        raise PersistenceError(f"{subject}: the server's answer holds no total")
    if offset + taken >= total:
        return None
    if not taken:
        raise PersistenceError(f"{subject}: the server's pages stopped at {offset} of {total}")
    return offset + taken


LISTING_TRIES = 5
"""Listings of the streams tried while streams are made or deleted meanwhile."""


async def streams(client: Client, timeout: float) -> list[dict[str, Any]]:
    """Every stream's configuration, from every page of the server's listing. The server pages a
    sorted list by offset: a stream made or deleted before a page's start while it is listed
    shifts the rest, and one would be left out unsaid. So each page after the first starts one
    stream early, and must start with the last one read; else the listing starts again (at
    most `LISTING_TRIES` times, then `PersistenceError`)."""
    for _ in range(LISTING_TRIES):
        listed = await _listing(client, timeout)
        if listed is not None:
            return listed
    raise PersistenceError(f"STREAM.LIST: the streams kept changing while listed ({LISTING_TRIES} tries)")


async def _listing(client: Client, timeout: float) -> list[dict[str, Any]] | None:
    """One listing of every stream; ``None`` if a page did not follow on from the one before."""
    found: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        start = offset - 1 if found else offset  # the last one read again: nothing shifted?
        answer = await _request(client, "STREAM.LIST", {"offset": start}, timeout)
        page = _field(answer, "streams")
        if page is not None and not isinstance(page, list):
            raise PersistenceError("STREAM.LIST: the server's answer holds no list of streams")
        configs = [_field(info, "config") for info in cast("list[object]", page or [])]
        taken = [cast("dict[str, Any]", config) for config in configs if isinstance(config, dict)]
        if found:
            if not taken or taken[0].get("name") != found[-1].get("name"):
                return None
            taken = taken[1:]
        found += taken
        offset = _next_offset("STREAM.LIST", answer or {}, offset, len(taken))
    return found


async def stream_subjects(client: Client, name: str, subject_filter: str, timeout: float) -> list[str] | None:
    """Every subject of the stream ``name`` that ``subject_filter`` takes and that holds a
    message, from every page of the stream's info; ``None`` if the stream is gone."""
    found: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = {"subjects_filter": subject_filter, "offset": offset}
        answer = await _request(client, f"STREAM.INFO.{name}", body, timeout)
        if answer is None:
            return None
        page = _field(answer.get("state"), "subjects")  # none when the stream holds no message
        if page is not None and not isinstance(page, dict):
            raise PersistenceError(f"STREAM.INFO.{name}: the server's answer holds no subjects")
        subjects = [str(subject) for subject in cast("dict[str, object]", page or {})]
        found += subjects
        offset = _next_offset(f"STREAM.INFO.{name}", answer, offset, len(subjects))
    return found


def journal_streams(prefix: str, configs: list[dict[str, Any]]) -> Iterator[JournalStream]:
    """The journal's streams and buckets among the streams ``configs``. An events stream is the
    journal's if its name is and its subjects take ``<prefix>.events.<type>.*`` (as the
    journal takes a stream made beforehand: the server lets no other stream hold them); a
    bucket if its name is and `bucket_is_ours`. Another journal's whose prefix begins as this
    one's (``app_events``, ``APP``) is not."""
    events_prefix, kv_prefix = f"{prefix.upper()}_EVENTS_", f"KV_{prefix}_"
    for config in configs:
        name, subjects = config.get("name"), config.get("subjects")
        if not isinstance(name, str):
            continue
        if name.startswith(events_prefix) and isinstance(subjects, list):
            entity_type = name[len(events_prefix) :]
            pattern = f"{prefix}.events.{entity_type}.*"
            if any(isinstance(f, str) and filter_covers(f, pattern) for f in cast("list[object]", subjects)):
                yield JournalStream(name, "events", entity_type, pattern, pattern[:-1])
        elif name.startswith(kv_prefix):
            kind, _, entity_type = name[len(kv_prefix) :].partition("_")
            if kind in _KINDS and bucket_is_ours(prefix, kind, entity_type, config.get("description")):
                yield JournalStream(name, kind, entity_type, f"$KV.{name[3:]}.>", f"$KV.{name[3:]}.")
