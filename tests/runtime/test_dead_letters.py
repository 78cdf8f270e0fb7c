"""Issue 5, dead letters: messages that reach a stopped actor, fail, have no handler or no
sender are recorded (inspectable, with counts) and logged without flooding the log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actorio import (
    Actor,
    DeadLetter,
    DeadLetters,
    Message,
    UnhandledMessage,
    dead_letters,
    handles,
)
from actorio.testing import MockClock
from tests.support import bounded

LOGGER = "actorio.dead_letters"


class Boom(Exception):
    pass


class Ping(Message[int]):
    pass


class Note(Message):
    n: int = 0


class Die(Message):
    pass


class Stranger(Message):
    pass


class Open(Actor[Any]):
    """No protocol: anything may be told to it; only Ping, Note and Die have handlers."""

    def __init__(self) -> None:
        super().__init__(identifier="open")

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return 1

    @handles(Note)
    async def note(self, msg: Note) -> None:
        pass

    @handles(Die)
    async def die(self, msg: Die) -> None:
        raise Boom("failed")


@pytest.mark.asyncio
async def test_message_to_a_stopped_actor_is_a_dead_letter() -> None:
    """Told to a stopped actor: reason ``stopped``, recipient its identifier, no error."""
    actor = Open()
    ref = await actor.start()
    await bounded(actor.stop())
    message = Note(n=1)
    await ref.tell(message)
    [letter] = dead_letters.records
    assert (letter.message, letter.recipient, letter.reason, letter.error) == (
        message,
        "open",
        "stopped",
        None,
    )
    assert str(letter) == f"{message!r} for open (stopped)"


@pytest.mark.asyncio
async def test_failed_message_is_a_dead_letter_with_its_error() -> None:
    """A told message whose handler raised: reason ``failed``, with the error."""
    actor = Open()
    ref = await actor.start()
    message = Die()
    await ref.tell(message)
    with pytest.raises(Boom):
        await bounded(actor.wait())
    [letter] = dead_letters.of("open", "failed")
    assert letter.message is message
    assert isinstance(letter.error, Boom)


@pytest.mark.asyncio
async def test_unhandled_message_is_a_dead_letter_and_the_actor_carries_on() -> None:
    """A told message with no handler: reason ``unhandled`` with UnhandledMessage; the actor goes
    on with its next message."""
    actor = Open()
    ref = await actor.start()
    await ref.tell(Stranger())
    assert await bounded(ref.ask(Ping())) == 1
    [letter] = dead_letters.of(reason="unhandled")
    assert isinstance(letter.message, Stranger)
    assert isinstance(letter.error, UnhandledMessage)
    await bounded(actor.stop())


def test_message_told_to_a_message_without_sender_is_a_dead_letter() -> None:
    """Replying to a message created without a sender: reason ``no-sender``."""
    Message().sender.tell_nowait(Note())
    [letter] = dead_letters.records
    assert (letter.recipient, letter.reason) == ("no-sender", "no-sender")


@pytest.mark.asyncio
async def test_counts_total_of_and_clear() -> None:
    """counts per reason and total are exact; of() filters by recipient and/or reason, oldest
    first; clear() forgets everything."""
    actor = Open()
    ref = await actor.start()
    await ref.tell(Stranger())
    await ref.tell(Stranger())
    await bounded(ref.ask(Ping()))
    await bounded(actor.stop())
    await ref.tell(Note(n=1))
    await ref.tell(Note(n=2))
    await ref.tell(Note(n=3))
    Message().sender.tell_nowait(Note(n=4))
    assert dead_letters.counts == {"unhandled": 2, "stopped": 3, "no-sender": 1}
    assert dead_letters.total == 6
    stopped = dead_letters.of("open", "stopped")
    assert [letter.message.n for letter in stopped if isinstance(letter.message, Note)] == [1, 2, 3]
    assert len(dead_letters.of("open")) == 5
    assert len(dead_letters.of(reason="no-sender")) == 1
    assert dead_letters.of("nobody") == []
    dead_letters.clear()
    assert dead_letters.total == 0
    assert list(dead_letters.records) == []


def test_max_records_keeps_the_latest_and_counts_stay_exact() -> None:
    """Only the latest max_records are kept; the counts count them all; max_records can shrink."""
    letters = DeadLetters(max_records=3)
    for n in range(5):
        letters.record(Note(n=n), "x", "stopped")
    assert letters.max_records == 3
    assert [letter.message.n for letter in letters.records] == [2, 3, 4]
    assert letters.counts["stopped"] == 5
    letters.max_records = 2
    assert [letter.message.n for letter in letters.records] == [3, 4]


def test_listeners_see_every_dead_letter_until_removed() -> None:
    """add_listener: called with each letter; remove_listener stops it (twice is harmless)."""
    letters = DeadLetters()
    seen: list[DeadLetter] = []
    letters.add_listener(seen.append)
    first = letters.record(Note(n=1), "x", "failed", Boom("e"))
    letters.remove_listener(seen.append)
    letters.remove_listener(seen.append)
    letters.record(Note(n=2), "x", "stopped")
    assert seen == [first]
    assert first.error is not None


@pytest.mark.asyncio
async def test_logging_is_limited_per_window_then_summarised(
    mock_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """At most log_limit lines per window (then one line saying logging is suspended); the first
    dead letter after the window logs how many were not logged, then itself."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    letters = DeadLetters(log_limit=3, log_window=10.0)
    for n in range(7):
        letters.record(Note(n=n), "x", "stopped")
    lines = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert len(lines) == 4
    assert all(line.startswith("dead letter (stopped) for x: ") for line in lines[:3])
    assert "n=2" in lines[2]
    assert lines[3] == "3 dead letters logged: more are counted but not logged for 10 s"
    caplog.clear()
    await asyncio.sleep(9.0)  # virtual time: still in the window
    letters.record(Note(n=7), "x", "stopped")
    assert [record for record in caplog.records if record.name == LOGGER] == []
    await asyncio.sleep(1.0)  # the window is over
    letters.record(Note(n=8), "x", "stopped", Boom("late"))
    lines = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert lines[0] == "5 more dead letters were not logged in the last 10 s"
    assert lines[1].startswith("dead letter (stopped) for x: ")
    assert lines[1].endswith(": Boom('late')")
    assert len(lines) == 2
    assert letters.counts["stopped"] == 9
    assert [letter.time for letter in letters.records][-3:] == [0.0, 9.0, 10.0]
