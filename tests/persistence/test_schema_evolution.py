"""Schema evolution: events carry their wire name and version; upcasters declared on the model
bring an old version up; a journal written by version 1 of the example's events (a committed
fixture, tests/persistence/fixtures/account_v1.py made it) replays into the current model; a
field removed without an upcaster is reported, not dropped."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from actorio import Message
from actorio.persistence import (
    Event,
    EventCodec,
    EventSourcedActor,
    SchemaMismatch,
    SqliteJournal,
    upcaster,
)
from tests.support import bounded

from .support import Account, Deposit, Deposited, GetBalance, Withdrawn

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "account_v1.sqlite3"


@pytest.fixture
def v1_journal(tmp_path: Path) -> Path:
    """A copy of the journal version 1 wrote (the fixture itself stays as committed)."""
    copy = tmp_path / "account_v1.sqlite3"
    shutil.copyfile(FIXTURE, copy)
    return copy


@pytest.mark.asyncio
async def test_a_journal_written_by_version_1_replays_into_version_2(v1_journal: Path) -> None:
    async with SqliteJournal(v1_journal) as journal:
        account = Account("alice", journal)
        async with account as ref:
            assert await bounded(ref.ask(GetBalance())) == 10 + 5 + 100 - 3
            assert account.sequence == 6
            assert await bounded(ref.ask(Deposit(amount=1, memo="new"))) == 113
        events = [
            Account.event_codec.decode(r.name, r.version, r.payload)
            async for r in journal.read(account.persistence_id)
        ]
    assert [e.memo for e in events if isinstance(e, Deposited)] == ["salary", "gift", "lottery", "new"]
    assert [e for e in events if isinstance(e, Withdrawn)] == [Withdrawn(amount=1)] * 3


class Deposited1(Event):
    """Version 1's Deposited with its ``note`` removed and no upcaster: must be refused."""

    event_name = "Deposited"
    amount: int


class Balance(BaseModel):
    amount: int = 0


class Careless(EventSourcedActor[Message[Any], Balance, Deposited1 | Withdrawn]):
    entity_type = "account"

    def apply(self, state: Balance, event: Deposited1 | Withdrawn) -> Balance:
        return state


@pytest.mark.asyncio
async def test_a_field_removed_without_an_upcaster_is_reported(v1_journal: Path) -> None:
    async with SqliteJournal(v1_journal) as journal:
        with pytest.raises(
            SchemaMismatch,
            # Where: the persistence id and the event's number, then what.
            match=r"^account/alice: event 1: stored event 'Deposited' version 1: "
            r".*stored field\(s\) 'note' are not in Deposited1 \(a removed field needs an upcaster "
            r"that drops it; or another program's records share this persistence id",
        ):
            async with Careless("alice", journal):
                pass


class Renamed(Event):
    event_name = "old-name"
    event_version = 3
    total: int
    unit: str

    @upcaster(from_version=1)
    @classmethod
    def split_amount(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {"total": fields["amount"]}

    @upcaster(from_version=2)
    @classmethod
    def add_unit(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "unit": "EUR"}


def test_upcasters_run_in_turn_from_the_stored_version() -> None:
    codec = EventCodec([Renamed])
    assert codec.decode("old-name", 1, b'{"amount": 3}') == Renamed(total=3, unit="EUR")
    assert codec.decode("old-name", 2, b'{"total": 4}') == Renamed(total=4, unit="EUR")
    assert codec.decode("old-name", 3, b'{"total": 5, "unit": "USD"}') == Renamed(total=5, unit="USD")
    data = codec.encode(Renamed(total=1, unit="X"))
    assert (data.name, data.version) == ("old-name", 3)


def test_what_cannot_be_read_is_reported() -> None:
    codec = EventCodec([Renamed, Deposited])
    with pytest.raises(SchemaMismatch, match="no event class has that wire name"):
        codec.decode("Unknown", 1, b"{}")
    with pytest.raises(SchemaMismatch, match="newer than Renamed"):
        codec.decode("old-name", 4, b"{}")
    with pytest.raises(SchemaMismatch, match="not JSON"):
        codec.decode("old-name", 3, b"{")
    with pytest.raises(SchemaMismatch, match="not a JSON object"):
        codec.decode("old-name", 3, b"[1]")
    with pytest.raises(SchemaMismatch, match="validation error"):
        codec.decode("old-name", 3, b'{"total": "many", "unit": "EUR"}')
    with pytest.raises(SchemaMismatch, match="declares no upcaster from version 1"):
        EventCodec([Gap]).decode("Gap", 1, b"{}")


class Gap(Event):
    event_version = 3

    @upcaster(from_version=2)
    @classmethod
    def from_2(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return fields


def test_the_event_class_is_checked_at_creation() -> None:
    with pytest.raises(TypeError, match="two upcasters from version 1"):

        class Twice(Event):
            event_version = 2

            @upcaster(from_version=1)
            @classmethod
            def a(cls, fields: dict[str, Any]) -> dict[str, Any]:
                return fields

            @upcaster(from_version=1)
            @classmethod
            def b(cls, fields: dict[str, Any]) -> dict[str, Any]:
                return fields

    with pytest.raises(TypeError, match="upcasts from version 2, but event_version is 2"):

        class Ahead(Event):
            event_version = 2

            @upcaster(from_version=2)
            @classmethod
            def a(cls, fields: dict[str, Any]) -> dict[str, Any]:
                return fields

    with pytest.raises(TypeError, match="event_version must be an int >= 1"):

        class Zero(Event):
            event_version = 0

    with pytest.raises(TypeError, match="have one wire name"):
        EventCodec([Renamed, type("Other", (Event,), {"event_name": "old-name"})])


def test_an_event_is_stored_as_model_dump_json_writes_it() -> None:
    """The codec calls the model's serializer directly (it is faster): the bytes are those of
    ``model_dump_json(by_alias=False)`` (each field under its name), aliases, nested models,
    dates and non-ASCII text included."""

    class Line(BaseModel):
        text: str
        at: datetime.date

    class Noted(Event):
        model_config = ConfigDict(populate_by_name=True)
        amount: int = Field(alias="Amount")
        lines: list[Line]
        memo: str | None = None

    event = Noted(Amount=3, lines=[Line(text="caf\u00e9 \u2713", at=datetime.date(2026, 1, 2))])
    encoded = EventCodec([Noted]).encode(event)
    assert encoded.payload == event.model_dump_json(by_alias=False).encode()
