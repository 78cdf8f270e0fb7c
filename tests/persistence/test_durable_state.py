"""Durable-state actors: the whole state saved with an optimistic revision, read back on start."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from actorio import Message, handles
from actorio.persistence import (
    DurableStateActor,
    InMemoryJournal,
    Journal,
    PersistenceId,
    SchemaMismatch,
    WriterConflict,
)
from tests.support import bounded

from .support import HeldJournal


class Cart(BaseModel):
    items: list[str] = []


class AddItem(Message[int]):
    item: str


class Count(Message[int]):
    pass


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
    with pytest.raises(SchemaMismatch, match="stored state version 2: Shopping is at state_version 1"):
        async with Shopping("bob", journal):
            pass
    other = InMemoryJournal()
    await other.save_state(BOB, 0, 1, b'{"items": [], "coupon": "X"}')
    with pytest.raises(SchemaMismatch, match="'coupon' are not in Cart"):
        async with Shopping("bob", other):
            pass
