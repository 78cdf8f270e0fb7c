"""Durable reminders: stored with the journal, fired on the loop's clock (the mock clock here),
after a restart too, at least once."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from actorio import Message, handles
from actorio.persistence import (
    DurableStateActor,
    InMemoryJournal,
    Journal,
    PersistenceId,
    SqliteJournal,
    copy_journal,
)
from actorio.testing import MockClock

from .support import Account, Deposit, GetBalance

HOUR = 3600.0
BOUND = 10.0


class Wake(Message):
    text: str


class Arm(Message):
    name: str
    delay: float


class Disarm(Message):
    name: str


class Ping(Message[list[str]]):
    pass


class Woken(BaseModel):
    texts: list[str] = []


class Sleeper(DurableStateActor[Wake | Arm | Disarm | Ping, Woken]):
    """Saves each wake-up; fails on a wake-up whose text is "fail"."""

    fired: asyncio.Event
    """Set by each wake-up (made by `sleeper`)."""

    @handles(Wake)
    async def wake(self, msg: Wake) -> None:
        if msg.text == "fail" and "failed once" not in self.state.texts:
            await self.save(Woken(texts=[*self.state.texts, "failed once"]))
            raise RuntimeError("the handler failed")
        await self.save(Woken(texts=[*self.state.texts, msg.text]))
        self.fired.set()

    @handles(Arm)
    async def arm(self, msg: Arm) -> None:
        await self.remind(msg.name, Wake(text=msg.name), msg.delay)

    @handles(Disarm)
    async def disarm(self, msg: Disarm) -> None:
        await self.cancel_reminder(msg.name)

    @handles(Ping)
    async def ping(self, msg: Ping) -> list[str]:
        return self.state.texts


SAM = PersistenceId("Sleeper", "sam")


def sleeper(journal: Journal) -> Sleeper:
    actor = Sleeper("sam", journal, clock=asyncio.get_running_loop().time)
    actor.fired = asyncio.Event()
    return actor


@pytest.mark.asyncio
async def test_a_reminder_fires_at_its_time_on_the_loop_clock(mock_clock: MockClock) -> None:
    journal = InMemoryJournal()
    actor = sleeper(journal)
    async with actor as ref:
        await ref.ask(Arm(name="wake", delay=HOUR))
        assert [r.name for r in await journal.load_reminders(SAM)] == ["wake"]
        await asyncio.sleep(HOUR - 1)  # autojump: to this sleep's end, before the reminder's
        assert await ref.ask(Ping()) == []
        await asyncio.wait_for(actor.fired.wait(), BOUND)
        assert mock_clock.time() == HOUR
        assert await ref.ask(Ping()) == ["wake"]
        assert actor.reminders == frozenset()
    assert await journal.load_reminders(SAM) == []  # fired: deleted


@pytest.mark.asyncio
async def test_a_reminder_fires_after_the_actor_was_stopped_and_started_again(mock_clock: MockClock) -> None:
    journal = InMemoryJournal()
    async with sleeper(journal) as ref:
        await ref.ask(Arm(name="later", delay=HOUR))
    await asyncio.sleep(10)  # nobody runs it meanwhile
    again = sleeper(journal)
    async with again as ref:
        assert await ref.ask(Ping()) == []  # recovered (before its first message)
        assert again.reminders == {"later"}
        await asyncio.wait_for(again.fired.wait(), HOUR + BOUND)
        assert mock_clock.time() == HOUR
        assert await ref.ask(Ping()) == ["later"]


@pytest.mark.asyncio
async def test_a_reminder_due_while_nobody_ran_it_fires_at_once_on_start(mock_clock: MockClock) -> None:
    journal = InMemoryJournal()
    async with sleeper(journal) as ref:
        await ref.ask(Arm(name="missed", delay=60))
    await asyncio.sleep(HOUR)
    again = sleeper(journal)
    async with again as ref:
        await asyncio.wait_for(again.fired.wait(), BOUND)
        assert mock_clock.time() == HOUR
        assert await ref.ask(Ping()) == ["missed"]


@pytest.mark.asyncio
async def test_a_reminder_whose_handler_failed_fires_again_in_the_next_incarnation(
    mock_clock: MockClock,
) -> None:
    journal = InMemoryJournal()
    first = sleeper(journal)
    await first.start()
    await first.reference.ask(Arm(name="fail", delay=5))
    with pytest.raises(RuntimeError, match="the handler failed"):
        await asyncio.wait_for(first.run_until_stopped(), BOUND)
    assert [r.name for r in await journal.load_reminders(SAM)] == ["fail"]  # still there
    again = sleeper(journal)
    async with again as ref:
        await asyncio.wait_for(again.fired.wait(), BOUND)
        assert await ref.ask(Ping()) == ["failed once", "fail"]
    assert await journal.load_reminders(SAM) == []


@pytest.mark.asyncio
async def test_a_cancelled_or_replaced_reminder_does_not_fire(mock_clock: MockClock) -> None:
    journal = InMemoryJournal()
    async with sleeper(journal) as ref:
        await ref.ask(Arm(name="a", delay=60))
        await ref.ask(Arm(name="b", delay=60))
        await ref.ask(Arm(name="b", delay=120))  # replaces the first "b"
        await ref.ask(Disarm(name="a"))
        await asyncio.sleep(119)
        assert await ref.ask(Ping()) == []
        await asyncio.sleep(2)
        assert await ref.ask(Ping()) == ["b"]
    assert await journal.load_reminders(SAM) == []


@pytest.mark.asyncio
async def test_reminders_recorded_on_the_wall_clock_replay_under_the_mock_clock(
    mock_clock: MockClock, tmp_path: Path
) -> None:
    """A production journal's due times are on ``time.time`` (about 1.8e9 s): the mock clock moved
    to the recording's time fires them at their exact due time. (asyncio's clock resolution, 1e-9
    s, is lost in a float that large: a timer due exactly when a jump put time was never run, and
    the loop spun.)"""
    async with SqliteJournal(tmp_path / "recorded.sqlite3") as recorded:
        production = Sleeper("sam", recorded)  # the default clock: time.time
        async with production as ref:
            await ref.ask(Arm(name="audit", delay=HOUR))
        replay = InMemoryJournal()
        await copy_journal(recorded, replay)
    (audit,) = await replay.load_reminders(SAM)
    assert audit.due > 1e9
    mock_clock.jump(audit.due - HOUR - mock_clock.time())  # back to when it was recorded, about
    replayed = sleeper(replay)
    async with replayed as ref:
        await asyncio.wait_for(replayed.fired.wait(), HOUR + BOUND)
        assert mock_clock.time() == audit.due
        assert await ref.ask(Ping()) == ["audit"]


@pytest.mark.asyncio
async def test_a_recorded_journal_replays_in_memory_under_the_mock_clock(
    mock_clock: MockClock, tmp_path: Path
) -> None:
    """Reproduce a state: copy a recorded journal (a SQLite file here) into memory, start the
    actors on it, and the state and the pending reminders are back, the reminders driven by the
    mock clock."""
    async with SqliteJournal(tmp_path / "recorded.sqlite3") as recorded:
        async with Account("alice", recorded) as account:
            for amount in (3, 4, 5):
                await account.ask(Deposit(amount=amount))
        async with sleeper(recorded) as ref:
            await ref.ask(Arm(name="audit", delay=HOUR))
    replay = InMemoryJournal()
    async with SqliteJournal(tmp_path / "recorded.sqlite3") as recorded:
        assert await copy_journal(recorded, replay) == 3
    (audit,) = await replay.load_reminders(SAM)
    async with Account("alice", replay) as account:
        assert await account.ask(GetBalance()) == 12
    replayed = sleeper(replay)
    async with replayed as ref:
        await asyncio.wait_for(replayed.fired.wait(), HOUR + BOUND)
        assert mock_clock.time() == audit.due
        assert await ref.ask(Ping()) == ["audit"]


class Stray(Message):
    """Not a message of `Sleeper`'s protocol."""


class ArmStray(Message):
    pass


class Unreadable(Message):
    when: int = Field(gt=0)


class Strict(DurableStateActor[ArmStray | Unreadable, Woken]):
    @handles(ArmStray)
    async def arm_stray(self, msg: ArmStray) -> None:
        await self.remind("stray", Stray(), HOUR)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    @handles(Unreadable)
    async def unreadable(self, msg: Unreadable) -> None:
        await self.remind("bad", Unreadable.model_construct(when=-1), HOUR)


@pytest.mark.asyncio
async def test_a_reminder_whose_message_would_not_be_read_back_is_refused_and_nothing_stored() -> None:
    """A reminder's message is read back by the protocol at each recovery: one outside it
    (``TypeError``) or whose wire form does not validate (``ValueError``) would fail every
    recovery of the id, so it is refused where it is made, nothing stored."""
    journal = InMemoryJournal()
    strict = Strict("s", journal)
    async with strict as ref:
        with pytest.raises(
            TypeError, match=r"Stray is not a message of its protocol \(ArmStray \| Unreadable\)"
        ):
            await ref.ask(ArmStray())
        with pytest.raises(ValueError, match="'bad' of Strict/s: its message does not validate"):
            await ref.ask(Unreadable(when=1))
        assert strict.reminders == frozenset()
    assert await journal.load_reminders(strict.persistence_id) == []
    again = Strict("s", journal)
    async with again:
        await asyncio.wait_for(again.wait_recovered(), BOUND)  # recovers: nothing unreadable stored


@pytest.mark.asyncio
async def test_a_reminder_re_armed_at_every_message_keeps_one_wait(mock_clock: MockClock) -> None:
    """Replacing a reminder (an idle timeout re-armed at every message) or cancelling it ends
    the old one's wait at once: neither a task nor memory is kept per re-arm until its due time."""
    journal = InMemoryJournal()
    actor = sleeper(journal)
    async with actor as ref:
        for _ in range(100):
            await ref.ask(Arm(name="idle", delay=HOUR))
        tasks = len(asyncio.all_tasks())
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(1000):
                await ref.ask(Arm(name="idle", delay=HOUR))
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(asyncio.all_tasks()) == tasks
        assert grown < 300_000, grown  # a wait kept per re-arm held about 2,800 bytes each
        await ref.ask(Disarm(name="idle"))
        await asyncio.sleep(2 * HOUR)
        assert await ref.ask(Ping()) == []  # none of them fired
    assert await journal.load_reminders(SAM) == []
