"""Issue 5, mailboxes: an optional capacity per actor, backpressure for ``await tell`` and ``ask``,
`MailboxFull` for ``tell_nowait``, and system messages ahead of queued user messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import ClassVar

import pytest

from actorio import (
    Actor,
    ActorStopped,
    MailboxFull,
    Message,
    Terminated,
    dead_letters,
    handles,
)
from actorio._mailbox import BoundedMailbox, Signal
from actorio.testing import MockClock
from tests.support import BOUND, bounded, queued


class Note(Message):
    n: int


class Park(Message):
    pass


class Seen(Message[list[str]]):
    pass


class Echo(Message[int]):
    n: int


class Slow(Actor[Note | Park | Seen | Echo]):
    """Records what it handles, in order; parks on Park until released."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__(identifier="slow", mailbox_capacity=capacity)
        self.seen: list[str] = []
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Note)
    async def note(self, msg: Note) -> None:
        self.seen.append(f"note-{msg.n}")

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        await self.release.wait()
        self.seen.append("parked")

    @handles(Seen)
    async def get_seen(self, msg: Seen) -> list[str]:
        return list(self.seen)

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        self.seen.append(f"echo-{msg.n}")
        return msg.n

    @handles(Terminated)
    async def terminated(self, msg: Terminated) -> None:
        self.seen.append(f"terminated-{msg.identifier}")


class SmallBox(Slow):
    mailbox_capacity: ClassVar[int | None] = 2


async def parked(actor: Slow) -> None:
    """Start ``actor`` and park its handler, so that what is told next stays queued."""
    await actor.start()
    await actor.reference.tell(Park())
    await bounded(actor.parked.wait())


@pytest.mark.asyncio
async def test_tell_nowait_raises_mailbox_full_and_queues_nothing() -> None:
    """A full bounded mailbox: tell_nowait raises MailboxFull (naming the actor and capacity),
    and the refused message is never handled."""
    actor = Slow(capacity=2)
    await parked(actor)
    ref = actor.reference
    ref.tell_nowait(Note(n=1))
    ref.tell_nowait(Note(n=2))
    with pytest.raises(MailboxFull) as raised:
        ref.tell_nowait(Note(n=3))
    assert (raised.value.identifier, raised.value.capacity) == ("slow", 2)
    actor.release.set()
    assert await bounded(ref.ask(Seen())) == ["parked", "note-1", "note-2"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_capacity_from_the_class_attribute_and_the_constructor() -> None:
    """mailbox_capacity comes from the class attribute, or from the constructor's argument,
    which wins; without either the mailbox is unbounded."""
    by_class, by_argument, unbounded = SmallBox(), SmallBox(capacity=1), Slow()
    for actor, capacity in ((by_class, 2), (by_argument, 1)):
        await parked(actor)
        for n in range(capacity):
            actor.reference.tell_nowait(Note(n=n))
        with pytest.raises(MailboxFull):
            actor.reference.tell_nowait(Note(n=99))
        actor.release.set()
        await bounded(actor.stop())
    await parked(unbounded)
    for n in range(1000):
        unbounded.reference.tell_nowait(Note(n=n))
    unbounded.release.set()
    assert len(await bounded(unbounded.reference.ask(Seen()))) == 1001
    await bounded(unbounded.stop())
    with pytest.raises(ValueError, match="at least 1"):
        Slow(capacity=0)


def test_an_actor_reports_the_capacity_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """``actor.mailbox_capacity`` is the bound of its mailbox: the constructor's argument, else
    the class's, read when the actor is made (a class changed afterwards too)."""
    assert (SmallBox(capacity=5).mailbox_capacity, SmallBox().mailbox_capacity) == (5, 2)
    assert (Slow(capacity=1).mailbox_capacity, Slow().mailbox_capacity) == (1, None)
    assert (SmallBox.mailbox_capacity, Slow.mailbox_capacity, Actor.mailbox_capacity) == (2, None, None)
    monkeypatch.setattr(Slow, "mailbox_capacity", 3)
    assert Slow().mailbox_capacity == 3
    full = Slow()
    for _ in range(3):
        full.reference.tell_nowait(Note(n=1))
    with pytest.raises(MailboxFull):
        full.reference.tell_nowait(Note(n=1))


@pytest.mark.asyncio
async def test_await_tell_waits_for_room_and_resumes_in_fifo_order(mock_clock: MockClock) -> None:
    """await tell on a full mailbox waits (backpressure); the waiting senders are let in one at a
    time as room frees, in the order they started waiting."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    senders = [asyncio.create_task(ref.tell(Note(n=n))) for n in (1, 2, 3)]
    await mock_clock.wait_all_tasks_blocked()
    assert not any(sender.done() for sender in senders)
    with pytest.raises(MailboxFull):
        ref.tell_nowait(Note(n=9))  # senders wait: a newcomer does not jump the line
    actor.release.set()
    await bounded(asyncio.gather(*senders))
    assert await bounded(ref.ask(Seen())) == ["parked", "note-0", "note-1", "note-2", "note-3"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_waiting_senders_keep_their_turn_when_a_system_message_is_taken(
    mock_clock: MockClock,
) -> None:
    """A system message taken from the mailbox frees no room for user messages: the first
    waiting sender stays first."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    senders = [asyncio.create_task(ref.tell(Note(n=n))) for n in (1, 2)]
    await mock_clock.wait_all_tasks_blocked()
    watched = Slow()
    watched_ref = await watched.start()
    actor.watch(watched_ref)
    await bounded(watched.stop())  # a Terminated notice goes ahead of note-0
    actor.release.set()
    await bounded(asyncio.gather(*senders))
    assert await bounded(ref.ask(Seen())) == ["parked", "terminated-slow", "note-0", "note-1", "note-2"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_a_woken_sender_keeps_the_room_it_was_given(mock_clock: MockClock) -> None:
    """Room freed for the one waiting sender is its own: a sender that arrives before the woken one
    runs is refused (tell_nowait) or waits behind it (await tell)."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    first = asyncio.create_task(ref.tell(Note(n=1)))
    await mock_clock.wait_all_tasks_blocked()
    actor.release.set()
    for _ in range(100):  # one loop step at a time (bounded), until the actor freed the room
        await asyncio.sleep(0)
        if queued(ref) == 0:
            break
    assert queued(ref) == 0
    assert not first.done()  # woken, not yet run
    with pytest.raises(MailboxFull):
        ref.tell_nowait(Note(n=9))
    later = asyncio.create_task(ref.tell(Note(n=2)))
    await bounded(asyncio.gather(first, later))
    assert await bounded(ref.ask(Seen())) == ["parked", "note-0", "note-1", "note-2"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_ask_waits_for_room(mock_clock: MockClock) -> None:
    """ask on a full mailbox waits for room, then is answered."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    asking = asyncio.create_task(ref.ask(Echo(n=5)))
    await mock_clock.wait_all_tasks_blocked()
    assert not asking.done()
    actor.release.set()
    assert await bounded(asking) == 5
    assert actor.seen == ["parked", "note-0", "echo-5"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_an_asks_timeout_covers_its_wait_for_room(mock_clock: MockClock) -> None:
    """``ask(timeout=...)`` on a full mailbox gives up at its timeout, nothing queued (the room
    may only come from the asker's own task: a parent asking its restarting child); the sender
    behind it gets the room when it comes."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    behind = asyncio.create_task(ref.ask(Echo(n=6)))
    with pytest.raises(asyncio.TimeoutError, match=r"slow's mailbox had no room for Echo within 0\.5 s"):
        await ref.ask(Echo(n=5), timeout=0.5)  # the mock clock jumps there
    assert not behind.done()
    actor.release.set()
    assert await bounded(behind) == 6
    assert actor.seen == ["parked", "note-0", "echo-6"]
    assert await bounded(ref.ask(Echo(n=7), timeout=0.5)) == 7  # the room and the reply in time
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_an_ask_that_waited_for_room_says_the_timeout_it_was_given(mock_clock: MockClock) -> None:
    """Room came after 0.4 s, then no reply: the ask times out at the 1 s it was given in all,
    and says 1 s (not what was left of it once queued)."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    asking = asyncio.create_task(ref.ask(Park(), timeout=1.0))
    await mock_clock.wait_all_tasks_blocked()
    await mock_clock.advance(0.4)
    first, actor.release = actor.release, asyncio.Event()  # the asked Park waits on a new one
    first.set()
    with pytest.raises(asyncio.TimeoutError, match=r"^no reply from slow to Park within 1 s$"):
        await asking
    assert mock_clock.time() == pytest.approx(1.0)
    actor.release.set()
    await bounded(actor.stop())


class _Reader:
    identifier = "reader"


@pytest.mark.asyncio
async def test_a_sender_that_leaves_passes_on_room_that_came_as_it_left() -> None:
    """A sender whose wait ends (its timer, or a cancellation) leaves its waiter in the queue of
    senders until its task runs again; room that comes then skips it (it is done). A sender
    arriving meanwhile waits behind it: the one leaving passes the room on, rather than leave
    the other waiting with room free."""
    mailbox = BoundedMailbox(_Reader(), 1)  # type: ignore[arg-type]  # what a mailbox reads of its actor
    mailbox.put("queued")  # full
    leaving = asyncio.create_task(mailbox.wait_for_room(60.0))
    await asyncio.sleep(0)  # it runs until it waits for room
    assert mailbox.putters is not None
    [waiter] = mailbox.putters
    waiter.cancel()  # what its timer or its cancellation does; its task has not run since
    mailbox.queue.popleft()  # what the mainloop does as it takes a message out
    mailbox.room()
    task = asyncio.current_task()
    assert task is not None
    watchdog = asyncio.get_running_loop().call_later(BOUND, task.cancel)
    try:
        await mailbox.wait_for_room()  # arriving now, in this step (as `await tell` does): behind it
    finally:
        watchdog.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(leaving)


@pytest.mark.asyncio
async def test_a_timeout_holds_after_a_woken_sender_has_to_wait_again(mock_clock: MockClock) -> None:
    """Woken for room that a signal then took, a sender waits again: its timeout, passed while it
    was woken, still ends the wait (the timer had fired on a future already done)."""
    mailbox = BoundedMailbox(_Reader(), 1)  # type: ignore[arg-type]  # what a mailbox reads of its actor
    mailbox.put("queued")  # full
    waiting = asyncio.create_task(mailbox.wait_for_room(0.05))
    await asyncio.sleep(0)  # it runs until it waits for room

    def mainloop_step() -> None:  # takes the message out, then a timer's tick is queued
        mailbox.queue.popleft()
        mailbox.room()
        mailbox.append("tick")

    # Due just before the sender's timer: both run in one iteration, before the sender does.
    asyncio.get_running_loop().call_later(0.049, mainloop_step)
    mock_clock.jump(0.1)
    done, _ = await asyncio.wait([waiting], timeout=BOUND)  # not `bounded`: its own TimeoutError
    assert waiting in done, "the sender waits past its timeout"
    with pytest.raises(asyncio.TimeoutError):
        waiting.result()


@pytest.mark.asyncio
async def test_a_cancellation_right_after_the_timeout_stays_a_cancellation(mock_clock: MockClock) -> None:
    """The sender's time is up and, before its task runs, the task is cancelled: it ends
    cancelled (a TimeoutError would let a caller that handles timeouts swallow the cancel)."""
    mailbox = BoundedMailbox(_Reader(), 1)  # type: ignore[arg-type]  # what a mailbox reads of its actor
    mailbox.put("queued")  # full
    waiting = asyncio.create_task(mailbox.wait_for_room(0.05))
    await asyncio.sleep(0)  # it runs until it waits for room
    asyncio.get_running_loop().call_later(0.0501, waiting.cancel)  # just after its timer
    mock_clock.jump(0.1)  # both in one iteration, before the sender runs
    done, _ = await asyncio.wait([waiting], timeout=BOUND)
    assert waiting in done
    assert waiting.cancelled()
    assert mailbox.putters is not None
    assert not mailbox.putters


class Canceller(Slow):
    """Its Note handler cancels ``victim``: the sender woken as that Note was taken out."""

    victim: asyncio.Task[int] | None = None

    @handles(Note)
    async def note(self, msg: Note) -> None:
        assert self.victim is not None
        self.victim.cancel()


@pytest.mark.asyncio
async def test_a_sender_cancelled_as_room_is_given_is_cancelled_with_a_timeout_too() -> None:
    """On Python 3.10 and 3.11, ``asyncio.wait_for`` on a future that completes as its task is
    cancelled returns the result: an ``ask(timeout=...)`` cancelled just as its room came queued
    its message anyway and returned the reply. The cancellation wins, as without a timeout."""
    actor = Canceller(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))  # full
    asking = actor.victim = asyncio.create_task(ref.ask(Echo(n=7), timeout=5.0))
    await asyncio.sleep(0)  # the ask runs until it waits for room
    mailbox = ref._mailbox
    assert isinstance(mailbox, BoundedMailbox)
    assert mailbox.putters is not None
    assert len(mailbox.putters) == 1  # Park in its handler, Note queued: the ask waits for room
    actor.release.set()  # Park ends; Note is taken out (the asker woken), then cancels the asker
    with pytest.raises(asyncio.CancelledError):
        await bounded(asking)
    assert "echo-7" not in (await bounded(ref.ask(Seen())))
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_waiting_senders_are_released_when_the_actor_stops(mock_clock: MockClock) -> None:
    """Senders waiting for room when the actor stops: a tell's message becomes a dead letter
    (reason stopped) and an ask fails with ActorStopped; neither waits any longer."""
    actor = Slow(capacity=1)
    await parked(actor)
    ref = actor.reference
    await ref.tell(Note(n=0))
    telling = asyncio.create_task(ref.tell(Note(n=1)))
    asking = asyncio.create_task(ref.ask(Echo(n=2)))
    await mock_clock.wait_all_tasks_blocked()
    stopping = asyncio.create_task(actor.stop())
    await mock_clock.wait_all_tasks_blocked()
    actor.release.set()
    await bounded(stopping)
    await bounded(telling)
    with pytest.raises(ActorStopped):
        await bounded(asking)
    assert actor.seen == ["parked"]
    letters = dead_letters.of("slow", "stopped")
    assert [letter.message.n for letter in letters if isinstance(letter.message, Note)] == [0, 1]


@pytest.mark.asyncio
async def test_system_messages_go_ahead_of_queued_user_messages_even_when_full(
    mock_clock: MockClock,
) -> None:
    """Watch notices are handled before the user messages already queued, and a full mailbox
    does not refuse them; stop goes ahead too (what is queued is not handled)."""
    actor = Slow(capacity=2)
    await parked(actor)
    ref = actor.reference
    ref.tell_nowait(Note(n=1))
    ref.tell_nowait(Note(n=2))
    first, second = Slow(), Slow()
    await first.start()
    await second.start()
    actor.watch(first)
    actor.watch(second)
    await bounded(first.stop())
    await bounded(second.stop())
    actor.release.set()
    assert await bounded(ref.ask(Seen())) == [
        "parked",
        "terminated-slow",
        "terminated-slow",
        "note-1",
        "note-2",
    ]

    actor.release.clear()
    actor.parked.clear()
    await ref.tell(Park())
    await bounded(actor.parked.wait())
    ref.tell_nowait(Note(n=3))
    stopping = asyncio.create_task(actor.stop())
    await mock_clock.wait_all_tasks_blocked()  # the stop signal is queued ahead of note-3
    actor.release.set()
    await bounded(stopping)
    assert actor.seen[-1] == "parked"  # note-3 was never handled
    assert [type(letter.message) for letter in dead_letters.of("slow", "stopped")] == [Note]


class Next(Message):
    pass


class Looper(Actor[Next | Note | Seen]):
    """Loops by telling itself, as the docs advise; its mailbox holds two messages."""

    mailbox_capacity = 2

    def __init__(self) -> None:
        super().__init__()
        self.loops = 0
        self.refused = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @handles(Next)
    async def next(self, msg: Next) -> None:
        self.loops += 1
        self.entered.set()
        await self.gate.wait()  # the mailbox fills meanwhile
        try:
            await self.tell(Next())
        except MailboxFull:
            self.refused += 1

    @handles(Note)
    async def note(self, msg: Note) -> None:
        pass

    @handles(Seen)
    async def seen(self, msg: Seen) -> list[str]:
        return [f"loops={self.loops}", f"refused={self.refused}"]


@pytest.mark.asyncio
async def test_an_actor_telling_itself_into_its_full_mailbox_gets_mailbox_full_at_once() -> None:
    """The room its own tell would wait for comes only once its handler returns: waiting would
    hang the actor (and its stop) for good, so the tell raises `MailboxFull` instead."""
    looper = Looper()
    ref = await looper.start()
    ref.tell_nowait(Next())
    await bounded(looper.entered.wait())
    ref.tell_nowait(Note(n=1))
    ref.tell_nowait(Note(n=2))  # full
    looper.gate.set()
    assert await bounded(ref.ask(Seen())) == ["loops=1", "refused=1"]
    await bounded(looper.stop())


class Batches(Slow):
    """Parks on each Park until ``release`` is set (and clears it as it goes on)."""

    @handles(Park)
    async def park(self, msg: Park) -> None:
        self.parked.set()
        await self.release.wait()
        self.release.clear()
        self.seen.append("parked")


async def in_this_task(awaitable: Awaitable[None], what: str) -> None:
    """Await ``awaitable`` in this task, not in a task of its own (as `bounded` would): the step it
    begins in matters. Fails the test if it is not done within ``BOUND`` seconds."""
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    watchdog = asyncio.get_running_loop().call_later(BOUND, expire)
    try:
        await awaitable
    except asyncio.CancelledError:
        if expired:
            pytest.fail(f"{what} waited past {BOUND} s")
        raise
    finally:
        watchdog.cancel()


@pytest.mark.asyncio
async def test_a_woken_sender_wakes_the_next_one_while_room_is_left(mock_clock: MockClock) -> None:
    """The actor takes out several messages and parks again before the one sender it woke has run;
    a sender arriving then waits behind that one. The woken sender queues its message and, room
    being left, wakes the next: the next does not wait for the actor to take another out."""
    actor = Batches(capacity=3)
    await parked(actor)
    ref = actor.reference
    for message in (Note(n=0), Note(n=1), Park()):
        ref.tell_nowait(message)  # full
    actor.parked.clear()
    first = asyncio.create_task(ref.tell(Note(n=2)))
    await mock_clock.wait_all_tasks_blocked()
    actor.release.set()
    for _ in range(100):  # one loop step at a time (bounded), until the actor parks again
        await asyncio.sleep(0)
        if actor.parked.is_set():
            break
    assert actor.parked.is_set()
    assert queued(ref) == 0  # three messages taken out, in one step of the actor
    assert not first.done()  # woken, not yet run
    await in_this_task(ref.tell(Note(n=3)), "a sender behind a woken one, with room left,")
    assert first.done()
    assert queued(ref) == 2  # both in, the actor still parked
    actor.release.set()
    assert await bounded(ref.ask(Seen())) == ["parked", "note-0", "note-1", "parked", "note-2", "note-3"]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_signals_do_not_count_against_the_capacity(mock_clock: MockClock) -> None:
    """Only user messages count against ``mailbox_capacity``: with timer ticks and a watch notice
    queued, a mailbox of capacity 2 still takes two user messages and refuses a third; a sender
    waiting for room gets in when a user message is taken out."""
    actor = Slow(capacity=2)
    await parked(actor)
    ref = actor.reference
    actor.start_timer("a", Note(n=10), 0.01)
    actor.start_timer("b", Note(n=11), 0.01)
    await mock_clock.advance(0.02)  # both ticks queued
    watched = Slow()
    actor.watch(await watched.start())
    await bounded(watched.stop())  # a Terminated notice
    assert queued(ref) == 3  # the two ticks and the notice's place: no user message
    ref.tell_nowait(Note(n=1))
    ref.tell_nowait(Note(n=2))
    with pytest.raises(MailboxFull):
        ref.tell_nowait(Note(n=3))
    waiting = asyncio.create_task(ref.tell(Note(n=3)))
    await mock_clock.wait_all_tasks_blocked()
    assert not waiting.done()
    actor.release.set()
    await bounded(waiting)
    assert await bounded(ref.ask(Seen())) == [
        "parked",
        "terminated-slow",
        "note-10",
        "note-11",
        "note-1",
        "note-2",
        "note-3",
    ]
    await bounded(actor.stop())


@pytest.mark.asyncio
async def test_a_message_taken_back_frees_room(mock_clock: MockClock) -> None:
    """`withdraw` (a message handed over, then taken back before it is handled) frees its room: a
    sender waiting for it gets in; a signal taken back frees none."""
    mailbox = BoundedMailbox(_Reader(), 1)  # type: ignore[arg-type]  # what a mailbox reads of its actor
    mailbox.put("queued")  # full
    tick = Signal()
    mailbox.append(tick)
    waiting = asyncio.create_task(mailbox.wait_for_room())
    await mock_clock.wait_all_tasks_blocked()
    assert mailbox.withdraw(tick)
    await mock_clock.wait_all_tasks_blocked()
    assert not waiting.done()
    assert mailbox.withdraw("queued")
    await bounded(waiting)
