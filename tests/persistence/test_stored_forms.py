"""What is stored reads back as it was written, or is refused where it is written:

- fields with an alias, in events and states (stored under their names, whatever their aliases,
  and read back by name), and computed fields (written, dropped when read back);
- NaN and infinity, which JSON lacks: refused where an event is persisted or a state saved;
- a field removed from a nested model: reported, as one removed from the model itself is;
- a snapshot that cannot be saved does not fail the persist whose events are stored, and a
  snapshot beyond the journal's last event is reported at recovery;
- SQLite: its own errors (a file locked past ``busy_timeout``) are `PersistenceError`, so that a
  state whose save failed goes back to what was saved; rows edited by hand into other types are
  `JournalCorrupted`.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import math
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, Json, computed_field

from actorio import Message, handles
from actorio.persistence import (
    DurableStateActor,
    Event,
    EventCodec,
    EventData,
    EventSourcedActor,
    InMemoryJournal,
    Journal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    SchemaMismatch,
    SnapshotRecord,
    SqliteJournal,
    upcaster,
)
from tests.support import bounded

pytestmark = pytest.mark.asyncio

_VALIDATE = inspect.signature(BaseModel.model_validate).parameters
needs_extra = pytest.mark.skipif("extra" not in _VALIDATE, reason="nested checks need pydantic 2.12")


class Place(BaseModel):
    street_name: str = Field(alias="streetName")


class Moved(Event):
    distance: float = Field(alias="dist")
    to: Place | None = None


class Position(BaseModel):
    total: float = 0.0
    last: Place | None = None


class Move(Message[float]):
    distance: float
    to: str = "Main St"


class Walker(EventSourcedActor[Move, Position, Moved]):
    entity_type = "walker"
    snapshot_every = 2

    def apply(self, state: Position, event: Moved) -> Position:
        return Position(total=state.total + event.distance, last=event.to)

    @handles(Move)
    async def move(self, msg: Move) -> float:
        await self.persist(Moved(dist=msg.distance, to=Place(streetName=msg.to)))
        return self.state.total


class Prefs(BaseModel):
    dark_mode: bool = Field(False, alias="darkMode")
    home: Place | None = None
    weight: float = 1.0


class Set(Message[int]):
    dark: bool
    weight: float = 1.0


class Read(Message[bool]):
    pass


class Settings(DurableStateActor[Set | Read, Prefs]):
    entity_type = "settings"

    @handles(Set)
    async def set(self, msg: Set) -> int:
        self.state = Prefs(darkMode=msg.dark, home=Place(streetName="Elm"), weight=msg.weight)
        return self.revision

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return self.state.dark_mode


async def test_aliased_fields_of_events_and_states_survive_recovery(journal: Journal) -> None:
    async with Walker("w", journal) as ref:
        assert await bounded(ref.ask(Move(distance=2.5, to="Oak"))) == 2.5
        assert await bounded(ref.ask(Move(distance=1.0))) == 3.5  # a snapshot at 2
        assert await bounded(ref.ask(Move(distance=1.0))) == 4.5
    again = Walker("w", journal)
    async with again:
        await bounded(again.wait_recovered())
        assert again.state == Position(total=4.5, last=Place(streetName="Main St"))
    stored = [record.payload async for record in journal.read(PersistenceId("walker", "w"))]
    assert b'"distance":2.5' in stored[0]
    assert b'"street_name":"Oak"' in stored[0]

    async with Settings("s", journal) as ref:
        await bounded(ref.ask(Set(dark=True)))
    settings = Settings("s", journal)
    async with settings as ref:
        assert await bounded(ref.ask(Read())) is True
        assert settings.state.home == Place(streetName="Elm")


class Crossed(BaseModel):
    """Each field's alias is the other field's name."""

    a: int = Field(0, alias="b")
    b: int = Field(0, alias="a")


class Crosser(DurableStateActor[Set | Read, Crossed]):
    entity_type = "crosser"

    @handles(Set)
    async def set(self, msg: Set) -> int:
        self.state = Crossed(b=1, a=2)  # by alias: a=1, b=2
        return 0

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return (self.state.a, self.state.b) == (1, 2)


async def test_aliases_that_name_other_fields_do_not_swap_them(journal: Journal) -> None:
    """Stored under their names, read back by name only: an alias that is another field's name
    does not swap the two."""
    async with Crosser("x", journal) as ref:
        await bounded(ref.ask(Set(dark=True)))
    crosser = Crosser("x", journal)
    async with crosser as ref:
        await bounded(crosser.wait_recovered())
        assert (crosser.state.a, crosser.state.b) == (1, 2)
        assert await bounded(ref.ask(Read())) is True


async def test_an_event_with_nan_or_infinity_is_refused_before_anything_is_written(
    journal: Journal,
) -> None:
    async with Walker("nan", journal) as ref:
        assert await bounded(ref.ask(Move(distance=1.0))) == 1.0
        for number in (math.inf, -math.inf, math.nan):
            with pytest.raises(ValueError, match=r"Moved.distance is .*JSON has no NaN.*cannot be stored"):
                await bounded(ref.ask(Move(distance=number)))
        assert await bounded(ref.ask(Move(distance=1.0))) == 2.0  # the actor goes on
    assert await journal.last_sequence(PersistenceId("walker", "nan")) == 2


async def test_a_state_with_nan_is_refused_and_goes_back_to_what_was_saved(journal: Journal) -> None:
    settings = Settings("nan", journal)
    async with settings as ref:
        await bounded(ref.ask(Set(dark=True, weight=2.0)))
        saved = await journal.load_state(PersistenceId("settings", "nan"))
        with pytest.raises(ValueError, match=r"Prefs.weight is inf: JSON has no NaN"):
            await bounded(ref.ask(Set(dark=False, weight=math.inf)))
        assert settings.state.weight == 2.0
        assert settings.state.dark_mode is True
        assert await bounded(ref.ask(Read())) is True
    assert await journal.load_state(PersistenceId("settings", "nan")) == saved


class Address(BaseModel):
    street: str


class MovedTo(Event):
    event_name = "MovedTo"
    address: Address


class Home(BaseModel):
    address: Address | None = None


class Resident(EventSourcedActor[Read, Home, MovedTo]):
    entity_type = "resident"

    def apply(self, state: Home, event: MovedTo) -> Home:
        return Home(address=event.address)

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return self.state.address is not None


class Keeper(DurableStateActor[Read, Home]):
    entity_type = "keeper"

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return self.state.address is not None


@needs_extra
async def test_a_field_removed_from_a_nested_model_is_reported() -> None:
    journal = InMemoryJournal()
    stored = b'{"address":{"street":"Main St","floor":2}}'
    await journal.append(PersistenceId("resident", "r"), 0, [EventData("MovedTo", 1, stored)])
    with pytest.raises(SchemaMismatch, match=r"stored field\(s\) 'address.floor' are not in MovedTo"):
        async with Resident("r", journal):
            pass
    await journal.save_state(PersistenceId("keeper", "k"), 0, 1, stored)
    with pytest.raises(SchemaMismatch, match=r"stored field\(s\) 'address.floor' are not in Home"):
        async with Keeper("k", journal):
            pass


DEEP = b"[" * 100_000 + b"]" * 100_000
"""JSON nested deeper than the parser goes: a RecursionError, unless caught where it is read."""


async def test_stored_json_nested_too_deep_is_a_schema_mismatch_naming_the_record() -> None:
    journal = InMemoryJournal()
    await journal.save_state(PersistenceId("settings", "deep"), 0, 1, DEEP)
    with pytest.raises(SchemaMismatch, match="settings/deep: stored state version 1: not JSON"):
        async with Settings("deep", journal):
            pass
    walker = PersistenceId("walker", "deep")
    await journal.append(walker, 0, [EventData("Moved", 1, b'{"distance":1.0}')])
    await journal.save_snapshot(SnapshotRecord(walker, 1, 1, DEEP))
    with pytest.raises(SchemaMismatch, match="walker/deep: snapshot: not JSON"):
        async with Walker("deep", journal):
            pass
    old = PersistenceId("resident", "deep")  # an event of an older version: read as JSON first
    await journal.append(old, 0, [EventData("MovedTo", 0, DEEP)])
    with pytest.raises(
        SchemaMismatch, match="resident/deep: event 1: stored event 'MovedTo' version 0: not JSON"
    ):
        async with Resident("deep", journal):
            pass


async def test_what_a_hostile_stored_event_holds_is_not_quoted_without_bound() -> None:
    """A name of a megabyte, a payload of 20,000 undeclared fields: the error stays short."""
    journal = InMemoryJournal()
    await journal.append(PersistenceId("walker", "long"), 0, [EventData("N" * 1_000_000, 1, b"{}")])
    with pytest.raises(SchemaMismatch) as unknown:
        async with Walker("long", journal):
            pass
    fields = b"{" + b",".join(b'"f%05d":1' % n for n in range(20_000)) + b', "distance":1.0}'
    await journal.append(PersistenceId("walker", "wide"), 0, [EventData("Moved", 1, fields)])
    with pytest.raises(SchemaMismatch, match=r"'f00000', 'f00001'.* are not in Moved") as wide:
        async with Walker("wide", journal):
            pass
    assert len(str(unknown.value)) < 2_000
    assert len(str(wide.value)) < 2_000


class NoSnapshots(InMemoryJournal):
    """Snapshots fail: the disk is full, say."""

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        raise PersistenceError("no room for the snapshot")


async def test_a_snapshot_that_cannot_be_saved_does_not_fail_the_persist(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = NoSnapshots()
    walker = Walker("snap", journal)
    with caplog.at_level(logging.WARNING, logger="actorio.persistence"):
        async with walker as ref:
            assert await bounded(ref.ask(Move(distance=1.0))) == 1.0
            assert await bounded(ref.ask(Move(distance=1.0))) == 2.0  # crosses snapshot_every
            assert walker.sequence == 2
    assert await journal.last_sequence(PersistenceId("walker", "snap")) == 2
    assert "walker/snap: the snapshot at event 2 was not saved" in caplog.text
    assert "no room for the snapshot" in caplog.text


async def test_a_snapshot_beyond_the_last_event_is_reported_at_recovery() -> None:
    journal = InMemoryJournal()
    walker = PersistenceId("walker", "ahead")
    await journal.append(walker, 0, [EventData("Moved", 1, b'{"distance":1.0}')])
    await journal.save_snapshot(SnapshotRecord(walker, 3, 1, b'{"total":3.0}'))
    ahead = "the snapshot is at event 3, but the journal's last event is 1"
    with pytest.raises(JournalCorrupted, match=ahead):
        async with Walker("ahead", journal):
            pass


async def test_a_locked_sqlite_file_fails_the_save_and_nothing_saves_it_later(tmp_path: Path) -> None:
    """Another connection holds the write lock past ``busy_timeout``: the save raises
    `PersistenceError` (not sqlite3's own error), the state goes back to what was saved, and a
    later message that changes nothing does not save the failed change."""
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path, busy_timeout=0.05) as journal:
        settings = Settings("locked", journal)
        async with settings as ref:
            await bounded(ref.ask(Set(dark=True)))
            rival = sqlite3.connect(path, isolation_level=None)
            rival.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(PersistenceError, match="locked"):
                    await bounded(ref.ask(Set(dark=False)))
            finally:
                rival.execute("ROLLBACK")
                rival.close()
            assert settings.state.dark_mode is True
            assert await bounded(ref.ask(Read())) is True
        stored = await journal.load_state(PersistenceId("settings", "locked"))
        assert stored is not None
        assert b'"dark_mode":true' in stored.payload


EDITS: Sequence[tuple[int, str, str]] = [
    (1, "UPDATE events SET payload = CAST(payload AS TEXT)", "event"),
    (1, "UPDATE events SET version = 'one'", "event"),
    (2, "UPDATE snapshots SET payload = CAST(payload AS TEXT)", "snapshot"),  # a snapshot at 2
]


@pytest.mark.parametrize(("moves", "edit", "what"), EDITS)
async def test_sqlite_rows_edited_into_other_types_are_journal_corrupted(
    tmp_path: Path, moves: int, edit: str, what: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as journal, Walker("edited", journal) as ref:
        for _ in range(moves):
            await bounded(ref.ask(Move(distance=1.0)))
    with sqlite3.connect(path) as edit_connection:
        edit_connection.execute(edit)
    edit_connection.close()
    async with SqliteJournal(path) as journal:
        with pytest.raises(JournalCorrupted, match=f"walker/edited: a stored {what} row holds"):
            async with Walker("edited", journal):
                pass


async def test_sqlite_state_and_reminder_rows_of_other_types_are_journal_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    settings = PersistenceId("settings", "edited")
    async with SqliteJournal(path) as journal:
        await journal.save_state(settings, 0, 1, b'{"dark_mode":true}')
    with sqlite3.connect(path) as edit_connection:
        edit_connection.execute("UPDATE states SET revision = 'one'")
        edit_connection.execute(
            "INSERT INTO reminders VALUES ('settings', 'edited', 'not a name', 1.0, x'7b7d')"
        )
    edit_connection.close()
    async with SqliteJournal(path) as journal:
        with pytest.raises(JournalCorrupted, match="settings/edited: a stored state row holds"):
            await journal.load_state(settings)
        bad_name = "settings/edited: a stored reminder: invalid reminder name"
        with pytest.raises(JournalCorrupted, match=bad_name):
            await journal.load_reminders(settings)


async def test_sqlite_a_stored_id_that_is_no_persistence_id_is_journal_corrupted(tmp_path: Path) -> None:
    """As on JetStream: `persistence_ids` names a stored id that is not a valid one, never
    skipping it nor raising a bare ``ValueError``."""
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.save_state(PersistenceId("settings", "fine"), 0, 1, b"{}")
    with sqlite3.connect(path) as edit_connection:
        edit_connection.execute("INSERT INTO snapshots VALUES ('settings', 'b@d', 1, 1, x'7b7d')")
    edit_connection.close()
    async with SqliteJournal(path) as journal:
        with pytest.raises(JournalCorrupted, match="a stored persistence id: invalid entity id 'b@d'"):
            await journal.persistence_ids()


class Sized(BaseModel):
    width: int
    height: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def area(self) -> int:
        return self.width * self.height


class Resized(Event):
    size: Sized
    label: str = Field(serialization_alias="Label")  # written under another name than it is read

    @computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> int:
        return 2 * self.size.area


class Canvas(BaseModel):
    size: Sized | None = None
    label: str = Field("", serialization_alias="Label")


class Resize(Message[int]):
    width: int


class Painter(EventSourcedActor[Resize, Canvas, Resized]):
    entity_type = "painter"

    def apply(self, state: Canvas, event: Resized) -> Canvas:
        return Canvas(size=event.size, label=event.label)

    @handles(Resize)
    async def resize(self, msg: Resize) -> int:
        await self.persist(Resized(size=Sized(width=msg.width, height=2), label="wide"))
        return self.state.size.area if self.state.size else 0


class Framer(DurableStateActor[Resize, Canvas]):
    entity_type = "framer"

    @handles(Resize)
    async def resize(self, msg: Resize) -> int:
        self.state = Canvas(size=Sized(width=msg.width, height=3), label="framed")
        return msg.width * 3


async def _written_then_recovered(
    actor_type: type[Painter | Framer], journal: Journal, message: Resize, answer: int
) -> Canvas:
    """The state a new incarnation recovers after one that was asked ``message`` (answering
    ``answer``) stopped."""
    async with actor_type("k", journal) as ref:
        assert await bounded(ref.ask(message)) == answer
    again = actor_type("k", journal)
    async with again:
        await bounded(again.wait_recovered())
        return again.state


async def test_computed_fields_and_output_only_aliases_read_back(journal: Journal) -> None:
    """A computed field is written (as pydantic writes it) and dropped when read back; a
    serialization alias that the model does not read is not what is stored."""
    painted = await _written_then_recovered(Painter, journal, Resize(width=5), 10)
    assert painted == Canvas(size=Sized(width=5, height=2), label="wide")
    framed = await _written_then_recovered(Framer, journal, Resize(width=4), 12)
    assert framed == Canvas(size=Sized(width=4, height=3), label="framed")


class Tree(BaseModel):
    name: str = ""
    children: list[Tree] = []


class Forest(DurableStateActor[Read, Tree]):
    entity_type = "forest"

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return bool(self.state.children)


@needs_extra
async def test_a_field_removed_from_a_recursive_model_is_reported() -> None:
    journal = InMemoryJournal()
    await journal.save_state(PersistenceId("forest", "f"), 0, 1, b'{"children":[{"gone":1}]}')
    with pytest.raises(SchemaMismatch, match=r"stored field\(s\) 'children.0.gone' are not in Tree"):
        async with Forest("f", journal):
            pass


class Stamp(BaseModel):
    """Fields that pydantic reads differently from a dict than from JSON: strict ones refuse the
    strings JSON stores them as; in a union with ``str`` a dict's string stays one."""

    model_config = ConfigDict(strict=True)
    at: datetime.datetime = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    tag: uuid.UUID = uuid.UUID(int=0)
    seen: datetime.datetime | str = ""
    count: int = 0


class Stamped(Event):
    model_config = ConfigDict(strict=True)
    event_version = 2
    at: datetime.datetime
    seen: datetime.datetime | str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def year(self) -> int:
        return self.at.year

    @upcaster(from_version=1)
    @classmethod
    def from_1(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "seen": fields["at"]}


class StampNow(Message[int]):
    at: datetime.datetime


class Stamper(EventSourcedActor[StampNow, Stamp, Stamped]):
    entity_type = "stamper"
    snapshot_every = 2

    def apply(self, state: Stamp, event: Stamped) -> Stamp:
        return Stamp(at=event.at, tag=uuid.UUID(int=event.at.year), seen=event.seen, count=state.count + 1)

    @handles(StampNow)
    async def stamp(self, msg: StampNow) -> int:
        await self.persist(Stamped(at=msg.at, seen=msg.at))
        return self.state.count


class Clerk(DurableStateActor[StampNow, Stamp]):
    entity_type = "clerk"

    @handles(StampNow)
    async def stamp(self, msg: StampNow) -> int:
        self.state = Stamp(at=msg.at, tag=uuid.UUID(int=7), seen=msg.at, count=self.state.count + 1)
        return self.state.count


async def test_strict_fields_and_unions_with_str_read_back_as_they_were_written(journal: Journal) -> None:
    """Snapshots, saved states, events with computed fields and upcast events are read back by
    JSON's rules, as events of the current version are: a strict model's datetime and UUID are
    not refused, and a ``datetime | str`` written as a datetime comes back as one."""
    when = datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.timezone.utc)
    async with Stamper("s", journal) as ref:
        for _ in range(3):  # a snapshot at 2, then an event after it
            await bounded(ref.ask(StampNow(at=when)))
    again = Stamper("s", journal)
    async with again:
        await bounded(again.wait_recovered())
        assert again.state == Stamp(at=when, tag=uuid.UUID(int=2024), seen=when, count=3)

    async with Clerk("k", journal) as ref:
        await bounded(ref.ask(StampNow(at=when)))
    kept = Clerk("k", journal)
    async with kept:
        await bounded(kept.wait_recovered())
        assert kept.state == Stamp(at=when, tag=uuid.UUID(int=7), seen=when, count=1)

    old = EventCodec([Stamped]).decode("Stamped", 1, b'{"at": "2024-05-06T07:08:00Z", "year": 2024}')
    assert old == Stamped(at=when, seen=when)


class Grove(BaseModel):
    """A state nested deeper than pydantic's JSON reader goes (about 200 levels), which
    ``json.loads`` and pydantic's writer take: read from the dict."""

    tree: Tree = Tree()
    n: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def twice(self) -> int:
        return 2 * self.n


class Grow(Message[int]):
    levels: int


class Oops(Message[int]):
    pass


class Ranger(DurableStateActor[Grow | Oops | Read, Grove]):
    entity_type = "ranger"

    @handles(Grow)
    async def grow(self, msg: Grow) -> int:
        tree = Tree()
        for _ in range(msg.levels):
            tree = Tree(children=[tree])
        self.state = Grove(tree=tree)
        return msg.levels

    @handles(Oops)
    async def oops(self, msg: Oops) -> int:
        self.state = Grove(tree=self.state.tree, n=5)
        raise RuntimeError("handler failed")

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return self.state.n == 0


async def test_a_state_nested_deeper_than_pydantic_reads_json_recovers_and_rolls_back(
    journal: Journal,
) -> None:
    """110 levels of a recursive model (JSON nested 221 deep): saved, rolled back after a failed
    handler, and recovered."""
    async with Ranger("r", journal) as ref:
        assert await bounded(ref.ask(Grow(levels=110))) == 110
        with pytest.raises(RuntimeError, match="handler failed"):
            await bounded(ref.ask(Oops()))
        assert await bounded(ref.ask(Read())) is True  # rolled back to what was saved
    again = Ranger("r", journal)
    async with again:
        await bounded(again.wait_recovered())
        depth, tree = 0, again.state.tree
        while tree.children:
            depth, tree = depth + 1, tree.children[0]
        assert depth == 110


class Own:
    """An object of the user's own, which JSON cannot hold."""


class Addressed(BaseModel):
    street_name: str = Field(alias="streetName")


class Upcast(Event):
    """Version 1 stored prices; version 2's upcaster returns what JSON does not hold: a model
    instance (with an alias), raw bytes for a base64 model, tuple keys, a generator, an object
    of its own. Such a record is read from the dict as it was returned."""

    model_config = ConfigDict(arbitrary_types_allowed=True, ser_json_bytes="base64", val_json_bytes="base64")
    event_version = 2
    to: Addressed
    blob: bytes
    pairs: dict[tuple[int, int], str]
    cents: list[int]
    own: Own

    @upcaster(from_version=1)
    @classmethod
    def from_1(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "to": Addressed(streetName="Main St"),
            "blob": b"hello",
            "pairs": {(1, 2): "a"},
            "cents": (round(price * 100) for price in fields["prices"]),
            "own": Own(),
        }


async def test_what_an_upcaster_returns_beyond_json_is_read_as_it_was_returned() -> None:
    event = EventCodec([Upcast]).decode("Upcast", 1, b'{"prices": [1.5, 2.25]}')
    assert isinstance(event, Upcast)
    assert (event.to.street_name, event.blob, event.pairs, event.cents) == (
        "Main St",
        b"hello",
        {(1, 2): "a"},
        [150, 225],
    )


class StrictGrove(BaseModel):
    """`Grove` strict, without computed fields: read from its bytes first."""

    model_config = ConfigDict(strict=True)
    at: datetime.datetime = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    tree: Tree = Tree()
    n: int = 0


class StrictRanger(DurableStateActor[Grow | Oops | Read, StrictGrove]):
    entity_type = "strict-ranger"

    @handles(Grow)
    async def grow(self, msg: Grow) -> int:
        tree = Tree()
        for _ in range(msg.levels):
            tree = Tree(children=[tree])
        self.state = StrictGrove(tree=tree)
        return msg.levels

    @handles(Oops)
    async def oops(self, msg: Oops) -> int:
        self.state.n = 5  # changed in place
        raise RuntimeError("handler failed")

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return self.state.n == 0


class Deep(Event):
    tree: Tree


async def test_a_strict_state_or_an_event_nested_too_deep_for_json_reads_back() -> None:
    """Nested deeper than pydantic reads JSON: a strict state rolls back and recovers (read
    laxly from the dict: its datetime is a string there), and an event of the current version
    reads back (its bytes refused for their depth alone)."""
    journal = InMemoryJournal()
    async with StrictRanger("r", journal) as ref:
        await bounded(ref.ask(Grow(levels=110)))
        with pytest.raises(RuntimeError, match="handler failed"):
            await bounded(ref.ask(Oops()))
        assert await bounded(ref.ask(Read())) is True
    again = StrictRanger("r", journal)
    async with again:
        await bounded(again.wait_recovered())
        assert again.state.at == datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)

    tree = Tree()
    for _ in range(110):
        tree = Tree(children=[tree])
    codec = EventCodec([Deep])
    data = codec.encode(Deep(tree=tree))
    assert codec.decode(data.name, data.version, data.payload) == Deep(tree=tree)


class Noted(Event):
    event_version = 2
    x: int
    note: Any = None

    @upcaster(from_version=1)
    @classmethod
    def from_1(cls, fields: dict[str, Any]) -> dict[str, Any]:
        fields["note"] = {"prev": fields}  # a cycle
        return fields


class Packed(BaseModel):
    meta: Json[dict[str, int]]


async def test_an_upcaster_returning_a_cycle_and_a_bad_json_field_are_reported_as_they_are() -> None:
    """A cycle an upcaster returns is looked at once (it hung the check for JSON's values); a
    `Json` field's own invalid JSON is not 'not JSON' for the whole record."""
    event = await asyncio.wait_for(asyncio.to_thread(EventCodec([Noted]).decode, "Noted", 1, b'{"x": 1}'), 10)
    assert isinstance(event, Noted)
    assert event.x == 1
    journal = InMemoryJournal()
    await journal.save_state(PersistenceId("packer", "p"), 0, 1, b'{"meta": "{oops"}')
    with pytest.raises(
        SchemaMismatch, match=r"packer/p: stored state version 1: 1 validation error"
    ) as caught:
        async with Packer("p", journal):
            pass
    assert "not JSON" not in str(caught.value)


class Packer(DurableStateActor[Read, Packed]):
    entity_type = "packer"

    def initial_state(self) -> Packed:
        return Packed.model_validate({"meta": "{}"})

    @handles(Read)
    async def read(self, msg: Read) -> bool:
        return True
