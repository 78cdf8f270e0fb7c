"""Random histories of an event-sourced actor on a journal that loses acknowledgements, fails
reads, holds messages back and stores them late (under the writer fence, as JetStream does),
and sometimes meets another writer: after every step, the actor is where a recovery of what it
claims to have applied would be, and a WriterConflict means another writer wrote. Seeded, so a
failure names its history; ``ACTORIO_PERSIST_HISTORIES=3000`` runs more of them."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import (
    Event,
    EventData,
    EventRecord,
    EventSourcedActor,
    InMemoryJournal,
    PersistenceError,
    PersistenceId,
    WriterConflict,
)

HISTORIES = int(os.environ.get("ACTORIO_PERSIST_HISTORIES", "150"))
ID = PersistenceId("tags", "a")


class Tags(BaseModel):
    tags: list[str] = []


class Tagged(Event):
    tag: str


class Note(Message):
    """A tag to persist (the histories call `persist` directly, as this handler does)."""

    tag: str


class Tagger(EventSourcedActor[Note, Tags, Tagged]):
    entity_type = "tags"

    def apply(self, state: Tags, event: Tagged) -> Tags:
        return Tags(tags=[*state.tags, event.tag])

    @handles(Note)
    async def note(self, msg: Note) -> None:
        await self.persist(Tagged(tag=msg.tag))


class SnappingTagger(Tagger):
    entity_type = "tags"
    snapshot_every = 3


class UnreliableJournal(InMemoryJournal):
    """``mode`` for the next append: ``before`` fails without writing, ``after`` writes and
    fails (a lost acknowledgement), ``held`` fails and keeps the message to store later
    (`land`); ``unreadable`` fails that many reads."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.unreadable = 0
        self.held: list[tuple[int, list[EventData]]] = []

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        mode, self.mode = self.mode, "ok"
        if mode == "before":
            raise PersistenceError("disk error")
        if mode == "held":
            self.held.append((expected_sequence, list(events)))
            raise PersistenceError("no acknowledgement (held)")
        last = await super().append(persistence_id, expected_sequence, events)
        if mode == "after":
            raise PersistenceError("no acknowledgement (stored)")
        return last

    def read(self, persistence_id: PersistenceId, after: int = 0) -> AsyncIterator[EventRecord]:
        if self.unreadable:
            self.unreadable -= 1
            raise PersistenceError("unreachable")
        return super().read(persistence_id, after)

    async def land(self, index: int) -> None:
        """Store a held message now, if the fence lets it (it expects what it expected)."""
        expected, events = self.held.pop(index)
        with contextlib.suppress(WriterConflict):
            await InMemoryJournal.append(self, ID, expected, events)

    def stored(self) -> list[bytes]:
        return [record.payload for record in self.events.get(ID, [])]


async def recovered(
    journal: InMemoryJournal, cls: type[Tagger], first: int | None = None
) -> tuple[Tags, int]:
    """The state and sequence a recovery gives from the journal's first ``first`` events."""
    if first is not None:
        prefix = InMemoryJournal()
        prefix.events[ID] = journal.events.get(ID, [])[:first]
        journal = prefix
    actor = cls("a", journal)
    await actor.recover()
    return actor.state, actor.sequence


async def history(seed: int, cls: type[Tagger], alike: bool) -> str | None:
    """One random history; what went wrong, or None. ``alike``: commands repeat their events."""
    rng = random.Random(seed)
    journal = UnreliableJournal()
    actor = cls("a", journal)
    await actor.recover()
    other = False
    encode = cls.event_codec.encode
    for step in range(rng.randint(3, 14)):
        roll = rng.random()
        if roll < 0.2 and journal.held:
            await journal.land(rng.randrange(len(journal.held)))
            continue
        if roll < 0.23 and not other and rng.random() < 0.3:
            other = True
            await InMemoryJournal.append(journal, ID, len(journal.stored()), [encode(Tagged(tag="OTHER"))])
            continue
        count = rng.randint(1, 2)
        events = [Tagged(tag=f"t{rng.randint(0, 1)}" if alike else f"c{step}.{i}") for i in range(count)]
        journal.mode = rng.choice(["ok", "before", "after", "held", "held", "after"])
        if rng.random() < 0.25:
            journal.unreadable = rng.randint(1, 2)
        try:
            await actor.persist(*events)
            outcome = "ok"
        except WriterConflict:
            outcome = "conflict"
        except PersistenceError as error:
            outcome = str(error)
        journal.unreadable = 0
        if (actor.state, actor.sequence) != await recovered(journal, cls, actor.sequence):
            return f"step {step}: state is not the recovery of its first {actor.sequence} events"
        if outcome == "conflict" and not other:
            return f"step {step}: WriterConflict without another writer"
        mine = [encode(event).payload for event in events]
        stored = journal.stored()
        if outcome == "ok" and not alike and stored[actor.sequence - count : actor.sequence] != mine:
            return f"step {step}: persist returned, but its events are not the last applied"
        nothing = "persisted nothing" in outcome or "so far" in outcome
        if nothing and not alike and any(payload in stored for payload in mine):
            return f"step {step}: said it wrote nothing, but its events are stored"
    if other:
        return None
    while journal.held:  # every held message arrives; then the actor catches up
        await journal.land(0)
    for _ in range(3):
        try:
            await actor.persist(Tagged(tag="last"))
            break
        except WriterConflict:
            return "at the end: WriterConflict without another writer"
        except PersistenceError:
            pass
    else:
        return "at the end: never persisted again"
    if (actor.state, actor.sequence) != await recovered(journal, cls):
        return "at the end: not where a recovery is"
    snapshot = journal.snapshots.get(ID)
    if snapshot is not None:
        state, _ = await recovered(journal, cls, snapshot.sequence)
        if Tags.model_validate_json(snapshot.payload) != state:
            return f"the snapshot at {snapshot.sequence} is not the state there"
    return None


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", [Tagger, SnappingTagger])
@pytest.mark.parametrize("alike", [False, True])
async def test_random_histories_end_where_a_recovery_is(cls: type[Tagger], alike: bool) -> None:
    failures = {}
    for seed in range(HISTORIES):
        found = await history(seed, cls, alike)
        if found is not None:
            failures[seed] = found
    assert not failures, f"{len(failures)} of {HISTORIES} histories: {dict(list(failures.items())[:5])}"
