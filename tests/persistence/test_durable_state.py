"""Durable-state actors: the whole state saved after each message that changed it, with an
optimistic revision, read back on start; a journal error that leaves the save unsure is
resolved by reading the state back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from actorio import ActorRef, Message, handles
from actorio.persistence import (
    DurableStateActor,
    InMemoryJournal,
    Journal,
    JournalCorrupted,
    PersistenceError,
    PersistenceId,
    SchemaMismatch,
    StateRecord,
    WriterConflict,
    upcaster,
)
from tests.support import bounded

from .support import HeldJournal


class Cart(BaseModel):
    items: list[str] = []


class AddItem(Message[int]):
    item: str


class Count(Message[int]):
    pass


class Tag(Message[int]):
    """Changes the state in place: the actor saves it without being told."""

    item: str


class Spoil(Message[None]):
    """Changes the state, then fails: nothing is saved."""


class Keeper(DurableStateActor[AddItem | Count | Tag | Spoil, Cart]):
    """Never calls `save`: each handler only changes ``state``."""

    entity_type = "cart"

    @handles(AddItem)
    async def add(self, msg: AddItem) -> int:
        self.state = Cart(items=[*self.state.items, msg.item])
        return len(self.state.items)

    @handles(Tag)
    async def tag(self, msg: Tag) -> int:
        self.state.items.append(msg.item)
        return len(self.state.items)

    @handles(Count)
    async def count(self, msg: Count) -> int:
        return len(self.state.items)

    @handles(Spoil)
    async def spoil(self, msg: Spoil) -> None:
        self.state.items.append("spoiled")
        raise ValueError("no")


class CountingJournal(InMemoryJournal):
    """Counts the saves; `fail_after_write` makes the next save write, then fail as a lost
    acknowledgement would; `fail_before_write` fail without writing; `fail_reads` the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.fail_after_write = self.fail_before_write = self.fail_reads = False
        self.refused: list[bytes] = []
        """The payloads of the saves failed before writing (to store one late)."""

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        self.saves += 1
        if self.fail_before_write:
            self.fail_before_write = False
            self.refused.append(payload)
            raise PersistenceError("disk error")
        revision = await super().save_state(persistence_id, expected_revision, version, payload)
        if self.fail_after_write:
            self.fail_after_write = False
            raise PersistenceError("no acknowledgement")
        return revision

    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        if self.fail_reads:
            raise PersistenceError("unreachable")
        return await super().load_state(persistence_id)


class Shopping(DurableStateActor[AddItem | Count, Cart]):
    entity_type = "cart"

    @handles(AddItem)
    async def add(self, msg: AddItem) -> int:
        await self.save(Cart(items=[*self.state.items, msg.item]))
        return len(self.state.items)

    @handles(Count)
    async def count(self, msg: Count) -> int:
        return len(self.state.items)


BOB = PersistenceId("cart", "bob")


@pytest.mark.asyncio
async def test_the_state_is_saved_whole_and_read_back(journal: Journal) -> None:
    async with Shopping("bob", journal) as cart:
        assert await bounded(cart.ask(AddItem(item="tea"))) == 1
        assert await bounded(cart.ask(AddItem(item="milk"))) == 2
    stored = await journal.load_state(BOB)
    assert stored is not None
    assert Cart.model_validate_json(stored.payload) == Cart(items=["tea", "milk"])
    shopping = Shopping("bob", journal)
    async with shopping as cart:
        assert await bounded(cart.ask(Count())) == 2
        assert shopping.revision == stored.revision


@pytest.mark.asyncio
async def test_a_second_writer_gets_a_conflict_and_writes_nothing(journal: Journal) -> None:
    first, second = Shopping("bob", journal), Shopping("bob", journal)
    async with first as one, second as two:
        await bounded(second.wait_recovered())
        assert await bounded(one.ask(AddItem(item="tea"))) == 1
        with pytest.raises(WriterConflict):
            await bounded(two.ask(AddItem(item="coffee")))
        assert second.state == Cart()
    stored = await journal.load_state(BOB)
    assert stored is not None
    assert Cart.model_validate_json(stored.payload) == Cart(items=["tea"])


@pytest.mark.asyncio
async def test_the_reply_waits_for_the_save() -> None:
    journal = HeldJournal()
    async with Shopping("bob", journal) as cart:
        task = asyncio.ensure_future(cart.ask(AddItem(item="tea")))
        count = asyncio.ensure_future(cart.ask(Count()))
        await bounded(journal.waiting.wait())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()
        assert not count.done()
        journal.release.set()
        assert await bounded(task) == 1
        assert await bounded(count) == 1


@pytest.mark.asyncio
async def test_a_stored_state_of_another_version_or_with_a_removed_field_is_reported() -> None:
    journal = InMemoryJournal()
    await journal.save_state(BOB, 0, 2, b'{"items": []}')
    with pytest.raises(SchemaMismatch, match=r"stored state version 2: newer than Shopping \(version 1\)"):
        async with Shopping("bob", journal):
            pass
    other = InMemoryJournal()
    await other.save_state(BOB, 0, 1, b'{"items": [], "coupon": "X"}')
    with pytest.raises(SchemaMismatch, match="'coupon' are not in Cart"):
        async with Shopping("bob", other):
            pass


class CartV3(BaseModel):
    """The cart's state, version 3: items with a quantity (version 2 renamed ``items`` to
    ``lines``; version 1 is `Cart`)."""

    lines: dict[str, int] = {}
    coupon: str = ""


class ShoppingV3(DurableStateActor[AddItem | Count, CartV3]):
    entity_type = "cart"
    state_version = 3

    @upcaster(from_version=1)
    @classmethod
    def rename_items(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {"lines": fields["items"], "coupon": ""}

    @upcaster(from_version=2)
    @classmethod
    def count_lines(cls, fields: dict[str, Any]) -> dict[str, Any]:
        lines: list[str] = fields["lines"]
        return {**fields, "lines": {item: lines.count(item) for item in lines}}

    @handles(AddItem)
    async def add(self, msg: AddItem) -> int:
        lines = dict(self.state.lines)
        lines[msg.item] = lines.get(msg.item, 0) + 1
        self.state = CartV3(lines=lines, coupon=self.state.coupon)
        return sum(lines.values())

    @handles(Count)
    async def count(self, msg: Count) -> int:
        return sum(self.state.lines.values())


class ShoppingV3Audited(ShoppingV3):
    """A subclass: the upcasters are inherited."""

    entity_type = "cart"


@pytest.mark.asyncio
async def test_a_stored_state_of_an_older_version_is_upcast_then_saved_in_the_new_one(
    journal: Journal,
) -> None:
    async with Shopping("bob", journal) as cart:  # version 1 of the state
        await bounded(cart.ask(AddItem(item="tea")))
        await bounded(cart.ask(AddItem(item="tea")))
        await bounded(cart.ask(AddItem(item="jam")))
    for actor_class in (ShoppingV3, ShoppingV3Audited):
        upgraded = actor_class("bob", journal)
        async with upgraded:
            assert await bounded(upgraded.ask(Count())) == 3
            assert upgraded.state == CartV3(lines={"tea": 2, "jam": 1})
        stored = await journal.load_state(BOB)
        assert stored is not None
        assert stored.version == 1  # nothing changed: nothing saved
    async with ShoppingV3("bob", journal) as cart_v3:
        assert await bounded(cart_v3.ask(AddItem(item="jam"))) == 4
    stored = await journal.load_state(BOB)
    assert stored is not None
    assert stored.version == 3
    assert CartV3.model_validate_json(stored.payload) == CartV3(lines={"tea": 2, "jam": 2})
    with pytest.raises(SchemaMismatch, match=r"stored state version 3: newer than Shopping \(version 1\)"):
        async with Shopping("bob", journal):
            pass


@pytest.mark.asyncio
async def test_a_missing_state_upcaster_is_reported_and_bad_ones_refused_at_class_creation() -> None:
    class Skipping(DurableStateActor[Count, CartV3]):
        entity_type = "cart"
        state_version = 3

        @upcaster(from_version=2)
        @classmethod
        def count_lines(cls, fields: dict[str, Any]) -> dict[str, Any]:
            return fields

        @handles(Count)
        async def count(self, msg: Count) -> int:
            return 0

    journal = InMemoryJournal()
    await journal.save_state(BOB, 0, 1, b'{"items": []}')
    with pytest.raises(
        SchemaMismatch, match="Skipping is at version 3 and declares no upcaster from version 1"
    ):
        async with Skipping("bob", journal):
            pass
    await journal.save_state(PersistenceId("cart", "eve"), 0, 1, b'{"things": []}')
    with pytest.raises(
        SchemaMismatch, match=r"ShoppingV3\.rename_items \(from version 1\) failed: KeyError"
    ) as raised:
        async with ShoppingV3("eve", journal):
            pass
    assert isinstance(raised.value.__cause__, KeyError)
    with pytest.raises(TypeError, match=r"TooFar\.count_lines upcasts from version 2, but state_version is"):

        class TooFar(Skipping):
            state_version = 2

    with pytest.raises(TypeError, match=r"Hiding\.count_lines hides the upcaster from version 2"):

        class Hiding(Skipping):  # its step from 3 takes the name of the step from 2: both would run it
            state_version = 4

            @upcaster(from_version=3)
            @classmethod
            def count_lines(cls, fields: dict[str, Any]) -> dict[str, Any]:
                return fields

    with pytest.raises(TypeError, match="state_version must be an int >= 1"):

        class Zero(Skipping):
            state_version = 0


async def stored_items(journal: Journal) -> list[str] | None:
    stored = await journal.load_state(BOB)
    return None if stored is None else Cart.model_validate_json(stored.payload).items


@pytest.mark.asyncio
async def test_a_changed_state_is_saved_after_each_message_without_save(journal: Journal) -> None:
    async with Keeper("bob", journal) as cart:
        assert await bounded(cart.ask(AddItem(item="tea"))) == 1
        assert await stored_items(journal) == ["tea"]  # durable when the reply came
        assert await bounded(cart.ask(Tag(item="milk"))) == 2  # changed in place: saved too
        assert await stored_items(journal) == ["tea", "milk"]
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        assert await bounded(cart.ask(Count())) == 2


@pytest.mark.asyncio
async def test_a_message_that_changes_nothing_writes_nothing() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        assert await bounded(cart.ask(Count())) == 0  # the initial state, unchanged: not written
        assert journal.saves == 0
        await bounded(cart.ask(AddItem(item="tea")))
        assert journal.saves == 1
        for _ in range(3):
            assert await bounded(cart.ask(Count())) == 1
        await keeper.save()  # nothing changed since: nothing written
        assert (journal.saves, keeper.revision) == (1, 1)
    async with Keeper("bob", journal) as cart:  # recovered: unchanged, so nothing written
        assert await bounded(cart.ask(Count())) == 1
    assert journal.saves == 1


@pytest.mark.asyncio
async def test_a_handler_that_raises_saves_nothing_and_the_state_goes_back() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await bounded(cart.ask(AddItem(item="tea")))
        with pytest.raises(ValueError, match="no"):
            await bounded(cart.ask(Spoil()))
        assert keeper.state == Cart(items=["tea"])
        assert await bounded(cart.ask(Count())) == 1
    assert journal.saves == 1
    assert await stored_items(journal) == ["tea"]


@pytest.mark.asyncio
async def test_a_second_writer_of_automatic_saves_gets_a_conflict_and_writes_nothing(
    journal: Journal,
) -> None:
    first, second = Keeper("bob", journal), Keeper("bob", journal)
    async with first as one, second as two:
        await bounded(second.wait_recovered())
        assert await bounded(one.ask(AddItem(item="tea"))) == 1
        with pytest.raises(WriterConflict, match="cart/bob: another writer got there first"):
            await bounded(two.ask(Tag(item="coffee")))
        assert second.state == Cart()  # back to what it last saved (here: recovered)
        assert await bounded(one.ask(AddItem(item="milk"))) == 2  # the first writer carries on
    assert await stored_items(journal) == ["tea", "milk"]


@pytest.mark.asyncio
async def test_the_reply_waits_for_the_automatic_save() -> None:
    journal = HeldJournal()
    async with Keeper("bob", journal) as cart:
        task = asyncio.ensure_future(cart.ask(AddItem(item="tea")))
        count = asyncio.ensure_future(cart.ask(Count()))
        await bounded(journal.waiting.wait())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()
        assert not count.done()
        journal.release.set()
        assert await bounded(task) == 1
        assert await bounded(count) == 1


@pytest.mark.asyncio
async def test_a_save_written_without_acknowledgement_is_read_back_and_the_actor_carries_on() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        journal.fail_after_write = True
        assert await bounded(cart.ask(AddItem(item="tea"))) == 1  # read back: it was written
        assert keeper.revision == 1
        assert await bounded(cart.ask(AddItem(item="milk"))) == 2  # no conflict after it
    assert await stored_items(journal) == ["tea", "milk"]


@pytest.mark.asyncio
async def test_a_save_not_written_is_reported_as_such_and_the_actor_carries_on() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        journal.fail_before_write = True
        with pytest.raises(
            PersistenceError, match="disk error \\(read back: the state was not saved, so far\\)"
        ):
            await bounded(cart.ask(AddItem(item="tea")))
        assert keeper.state == Cart()
        assert await bounded(cart.ask(AddItem(item="milk"))) == 1
    assert await stored_items(journal) == ["milk"]


async def _tea_read_back_as_not_saved(
    journal: CountingJournal, keeper: Keeper, cart: ActorRef[AddItem]
) -> None:
    await bounded(keeper.wait_recovered())
    journal.fail_before_write = True
    with pytest.raises(PersistenceError, match="not saved, so far"):
        await bounded(cart.ask(AddItem(item="tea")))


@pytest.mark.asyncio
async def test_a_save_stored_late_is_found_by_the_next_conflict_and_the_actor_carries_on() -> None:
    """A save read back as not saved may still be stored (a client sending what it buffered while
    reconnecting): the next save meets the revision check, reads back, and finds it."""
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await _tea_read_back_as_not_saved(journal, keeper, cart)
        await journal.save_state(BOB, 0, 1, journal.refused[-1])  # the tea, stored late
        with pytest.raises(PersistenceError, match="was saved after all") as raised:
            await bounded(cart.ask(AddItem(item="milk")))
        assert not isinstance(raised.value, WriterConflict)
        assert keeper.state == Cart(items=["tea"])
        assert await bounded(cart.ask(AddItem(item="milk"))) == 2
    assert await stored_items(journal) == ["tea", "milk"]


@pytest.mark.asyncio
async def test_a_save_conflict_whose_read_back_fails_says_nothing_was_written() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await _tea_read_back_as_not_saved(journal, keeper, cart)
        await journal.save_state(BOB, 0, 1, journal.refused[-1])  # the tea, stored late
        journal.fail_reads = True
        with pytest.raises(PersistenceError, match=r"nothing was written.*reading it back failed") as raised:
            await bounded(cart.ask(AddItem(item="milk")))
        assert not isinstance(raised.value, WriterConflict)  # the other writer may be itself
        assert keeper.state == Cart()
        journal.fail_reads = False
        with pytest.raises(PersistenceError, match="was saved after all"):
            await bounded(cart.ask(AddItem(item="milk")))
        assert await bounded(cart.ask(AddItem(item="milk"))) == 2
    assert await stored_items(journal) == ["tea", "milk"]


@pytest.mark.asyncio
async def test_another_writer_after_a_save_read_back_as_not_saved_is_still_a_conflict() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await _tea_read_back_as_not_saved(journal, keeper, cart)
        await journal.save_state(BOB, 0, 1, Cart(items=["coffee"]).model_dump_json().encode())
        with pytest.raises(WriterConflict):
            await bounded(cart.ask(AddItem(item="milk")))
        assert keeper.state == Cart()
    assert await stored_items(journal) == ["coffee"]


@pytest.mark.asyncio
async def test_a_save_that_stays_unsure_is_read_back_before_the_next_one() -> None:
    journal = CountingJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await bounded(keeper.wait_recovered())
        journal.fail_after_write = journal.fail_reads = True
        with pytest.raises(PersistenceError, match="no acknowledgement"):
            await bounded(cart.ask(AddItem(item="tea")))
        assert keeper.state == Cart()  # unsure: what it last knew to be saved
        journal.fail_reads = False
        # The next save reads back first: "tea" was written, so it carries on after it.
        assert await bounded(cart.ask(AddItem(item="milk"))) == 2
        assert keeper.revision == 2
    assert await stored_items(journal) == ["tea", "milk"]


class CorruptReadsJournal(CountingJournal):
    async def load_state(self, persistence_id: PersistenceId) -> StateRecord | None:
        if self.fail_reads:
            raise JournalCorrupted("a corrupt state record")
        return await super().load_state(persistence_id)


@pytest.mark.asyncio
async def test_a_read_back_that_finds_the_journal_corrupted_says_so() -> None:
    """As an event-sourced actor's does: it was folded into "reading it back failed"."""
    journal = CorruptReadsJournal()
    keeper = Keeper("bob", journal)
    async with keeper as cart:
        await bounded(keeper.wait_recovered())
        journal.fail_after_write = journal.fail_reads = True
        with pytest.raises(JournalCorrupted, match="a corrupt state record"):
            await bounded(cart.ask(AddItem(item="tea")))
