"""What a journal stores: persistence ids and the records of events, snapshots, states and
reminders, as plain data (payloads are JSON bytes, made and read by `actorio.persistence`'s
codecs; a journal never looks inside them)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import cast

from actorio.lowlevel import shorten

__all__ = ["EventData", "EventRecord", "PersistenceId", "ReminderRecord", "SnapshotRecord", "StateRecord"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ID = re.compile(r"[A-Za-z0-9_=-]{1,128}")
"""An entity id also takes ``=`` (as an entity's key does, see ``actorio.nats``): a subject token
and a key-value key both allow it."""


def _check_name(what: str, value: str, rule: re.Pattern[str]) -> None:
    if not isinstance(value, str) or rule.fullmatch(value) is None:  # pyright: ignore[reportUnnecessaryIsInstance]
        allowed = "'_', '=' and '-'" if rule is _ID else "'_' and '-'"
        raise ValueError(
            f"invalid {what} {shorten(repr(value))}: 1 to 128 characters among letters, digits, {allowed} "
            "(it names a table row, a NATS subject token and a key-value key)"
        )


@dataclass(frozen=True, slots=True)
class PersistenceId:
    """Whose records: an entity type (``"account"``, one stream or table space per type) and an
    entity id (``"42"``). Each is 1 to 128 letters, digits, ``_`` or ``-`` (the id ``=`` too,
    as an entity's key); anything else is a ``ValueError`` here, where it enters, so that no
    journal has to escape it."""

    entity_type: str
    entity_id: str

    def __post_init__(self) -> None:
        _check_name("entity type", self.entity_type, _NAME)
        _check_name("entity id", self.entity_id, _ID)

    def __str__(self) -> str:
        return f"{self.entity_type}/{self.entity_id}"


@dataclass(frozen=True, slots=True)
class EventData:
    """One event to append: its wire name, its version and its fields as JSON bytes."""

    name: str
    version: int
    payload: bytes


_new = object.__new__
_set_name, _set_version, _set_payload = (vars(EventData)[f].__set__ for f in ("name", "version", "payload"))


def event_data(name: str, version: int, payload: bytes) -> EventData:
    """``EventData(name, version, payload)``, the same object, made without the frozen
    dataclass's ``__init__`` (which sets each field through ``object.__setattr__``): 830 ns
    instead of 1,350 per event encoded (timeit, CPython 3.11)."""
    data = _new(EventData)
    _set_name(data, name)
    _set_version(data, version)
    _set_payload(data, payload)
    return data


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event: its persistence id, its sequence number (1, 2, 3, ... per id), its wire
    name, version and payload, and when it was written (seconds since the epoch)."""

    persistence_id: PersistenceId
    sequence: int
    name: str
    version: int
    payload: bytes
    written: float


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """The state of an event-sourced actor after event ``sequence``, with its state version."""

    persistence_id: PersistenceId
    sequence: int
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class StateRecord:
    """The whole state of a durable-state actor at ``revision``: a number that grows with each
    save of the id (at least 1 after the first). Only its equality means something: on
    JetStream it is the key-value bucket's sequence, which the type's other ids share, so it
    may grow by more than one between two saves of one id."""

    persistence_id: PersistenceId
    revision: int
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ReminderRecord:
    """A durable reminder: ``message`` (a message's wire form) told to the actor of
    ``persistence_id`` at ``due`` (seconds since the epoch). One per ``name`` and id.

    ``due`` must be a finite number (an ``int`` or a ``float``, not a bool, that a float can
    hold): anything else, NaN, infinity and an ``int`` beyond a float's range included, is a
    ``ValueError`` naming the reminder, here where it enters, so that no journal stores a
    reminder that is never (or always) due. So is a ``message`` that is not UTF-8 text (a
    message's wire form is JSON), which not every journal could store."""

    persistence_id: PersistenceId
    name: str
    due: float
    message: bytes

    def __post_init__(self) -> None:
        _check_name("reminder name", self.name, _NAME)
        due = cast(object, self.due)  # anything, from a caller that ignored the type
        try:
            finite = isinstance(due, (int, float)) and not isinstance(due, bool) and math.isfinite(due)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ValueError(
                f"reminder {self.name!r} of {self.persistence_id}: due {shorten(repr(due))} is not a "
                "finite number of seconds"
            )
        try:
            self.message.decode()
        except UnicodeDecodeError as error:
            raise ValueError(
                f"reminder {self.name!r} of {self.persistence_id}: its message is not UTF-8 text "
                f"({error.reason} at byte {error.start})"
            ) from None
