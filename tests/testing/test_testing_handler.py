"""actorio.testing.run_handler: one handler against one message, without a mainloop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from typing_extensions import assert_type

from actorio import (
    NO_REPLY,
    Actor,
    ActorRef,
    ActorStopped,
    EndMainLoop,
    Message,
    NoReply,
    Reference,
    UnhandledMessage,
    ask,
    handles,
)
from actorio.testing import ActorTestKit, AskFailed, MockClock, Sent, TestProbe, run_handler
from tests.support import await_a_cancelled_task

pytestmark = pytest.mark.asyncio


class Job(Message[str]):
    name: str


class Report(Message):
    text: str


class Done(Message):
    pass


class Explode(Message):
    pass


class Hold(Message):
    pass


class Quit(Message[int]):
    pass


class Boom(Exception):
    pass


class Helper(Actor[Job]):
    @handles(Job)
    async def job(self, msg: Job) -> str:
        return f"helped with {msg.name}"


class Boss(Actor[Job | Done | Explode | Hold | Quit]):
    """Spawns a helper per job, reports to an audience, asks an adviser."""

    def __init__(self, audience: ActorRef[Report], adviser: ActorRef[Job] | None = None) -> None:
        super().__init__()
        self.audience = audience
        self.adviser = adviser
        self.release = asyncio.Event()

    @handles(Job)
    async def job(self, msg: Job) -> NoReply:
        await self.audience.tell(Report(text=f"starting {msg.name}"))
        helper = await self.register_child(Helper())
        return await helper.forward(msg)

    @handles(Done)
    async def done(self, msg: Done) -> None:
        if self.adviser is not None:
            advice = await ask(self.adviser, Job(name="advice"), timeout=5)
            await self.audience.tell(Report(text=advice))
        await self.stop()

    @handles(Explode)
    async def explode(self, msg: Explode) -> None:
        await self.audience.tell(Report(text="about to explode"))
        raise Boom("exploded")

    @handles(Hold)
    async def hold(self, msg: Hold) -> None:
        await self.audience.tell(Report(text="holding"))
        await self.release.wait()

    @handles(Quit)
    async def quit(self, msg: Quit) -> int:
        raise EndMainLoop()


class Legacy(Actor):
    """The original style: replies by telling the sender, from handle_message."""

    async def handle_message(self, message: Any) -> None:
        if isinstance(message, Report):
            await message.sender.tell(Report(text=f"echo {message.text}"))
            await message.sender.tell(Report(text="and a second thing"))


async def test_reply_is_the_return_value() -> None:
    outcome = await run_handler(Helper(), Job(name="x"))
    assert_type(outcome.reply, str | NoReply)
    assert_type(outcome.message, Job)
    assert outcome.reply == "helped with x"
    assert outcome.returned == "helped with x"
    assert outcome.sent == []
    assert outcome.spawned == []
    assert not outcome.stopped


async def test_sent_spawned_and_handed_on() -> None:
    audience = TestProbe(Report)
    boss = Boss(audience)

    outcome = await run_handler(boss, Job(name="paint"))
    assert outcome.reply is NO_REPLY  # handed on to the helper
    [helper] = outcome.spawned
    assert isinstance(helper, Helper)
    assert not helper.started  # children are not started
    assert outcome.sent == [
        Sent(audience, outcome.sent[0].message),
        Sent(helper.reference, outcome.message),
    ]
    assert outcome.sent_to(audience)[0] == outcome.sent[0].message
    assert outcome.sent_to(helper) == [outcome.message]
    assert (await audience.expect_message(Report)).text == "starting paint"  # delivered as well

    answered = await run_handler(helper, outcome.message)
    assert answered.reply == "helped with paint"
    assert len(helper._actor_mailbox) == 0  # handling took it out of the child's mailbox


async def test_a_probe_asking_through_run_handler_gets_the_reply() -> None:
    probe = TestProbe()
    boss = Boss(TestProbe(Report))
    handed = await run_handler(boss, probe.asking(Job(name="x")))
    await run_handler(handed.spawned[0], handed.message)
    assert (await probe.expect_message(Message)).model_dump().get("data") == "helped with x"


async def test_asks_are_recorded_and_really_asked(actor_kit: ActorTestKit) -> None:
    audience = TestProbe(Report)
    adviser = await actor_kit.spawn(Helper())
    boss = Boss(audience, adviser)

    outcome = await run_handler(boss, Done())
    assert outcome.sent[0] == Sent(adviser, outcome.sent[0].message, asked=True)
    assert outcome.sent[1].recipient == audience
    assert (await audience.expect_message(Report)).text == "helped with advice"
    assert outcome.stopped  # it called stop()
    assert outcome.reply is None  # the return value of a Message[None] handler


async def test_end_main_loop_stops_without_a_reply() -> None:
    outcome = await run_handler(Boss(TestProbe(Report)), Quit())
    assert outcome.stopped
    assert outcome.reply is NO_REPLY
    assert outcome.returned is None


async def test_handle_message_replies_with_the_first_thing_told() -> None:
    outcome = await run_handler(Legacy(), Report(text="hi"))
    assert isinstance(outcome.reply, Report)
    assert outcome.reply.text == "echo hi"


async def test_a_told_message_keeps_its_sender() -> None:
    probe = TestProbe()
    outcome = await run_handler(Legacy(), Report(text="hi", sender=probe), asked=False)
    assert outcome.reply is NO_REPLY
    assert tuple(sent.message for sent in outcome.sent) == probe.queued
    assert [message.text for message in await probe.receive_messages(2) if isinstance(message, Report)] == [
        "echo hi",
        "and a second thing",
    ]


async def test_tells_to_plain_references_are_recorded() -> None:
    inbox = Reference()
    outcome = await run_handler(Legacy(), Report(text="hi", sender=inbox), asked=False)
    assert [sent.recipient for sent in outcome.sent] == [inbox, inbox]
    assert inbox.inbox.qsize() == 2


async def test_an_exception_from_the_handler_is_raised() -> None:
    audience = TestProbe(Report)
    with pytest.raises(Boom, match="exploded"):
        await run_handler(Boss(audience), Explode())
    await audience.expect_message(Report(text="about to explode"))


async def test_an_exception_fails_an_ask_made_by_a_probe() -> None:
    probe = TestProbe()
    with pytest.raises(Boom):
        await run_handler(Boss(TestProbe(Report)), probe.asking(Explode()))
    failed = await probe.expect_message(AskFailed)
    assert isinstance(failed.error, Boom)


async def test_end_main_loop_fails_an_ask_made_by_a_probe() -> None:
    probe = TestProbe()
    outcome = await run_handler(Boss(TestProbe(Report)), probe.asking(Quit()))
    assert outcome.stopped
    assert isinstance((await probe.expect_message(AskFailed)).error, ActorStopped)


async def test_unhandled_and_outside_the_protocol(caplog: pytest.LogCaptureFixture) -> None:
    class Other(Message):
        pass

    class Untyped(Actor):
        @handles(Job)
        async def job(self, msg: Job) -> str:
            return "job"

    with caplog.at_level(logging.CRITICAL, logger="actorio.actor"), pytest.raises(UnhandledMessage):
        await run_handler(Untyped(), Other())
    with pytest.raises(TypeError, match="does not accept Other"):
        await run_handler(Helper(), Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def test_a_running_actor_is_refused(actor_kit: ActorTestKit) -> None:
    helper = Helper()
    await actor_kit.spawn(helper)
    with pytest.raises(RuntimeError, match="is running"):
        await run_handler(helper, Job(name="x"))


async def test_a_handler_that_does_not_finish_is_cancelled(mock_clock: MockClock) -> None:
    boss = Boss(TestProbe(Report))
    with pytest.raises(AssertionError) as failure:
        await run_handler(boss, Hold(), timeout=10)
    assert str(failure.value) == (
        "Boss.hold did not finish within 10 s; it had sent [Report(text='holding')] and spawned []"
    )
    assert mock_clock.time() == 10


async def test_only_the_handler_and_its_tasks_are_recorded(actor_kit: ActorTestKit) -> None:
    original = ActorRef.tell_nowait
    audience = TestProbe(Report)

    class Echo(Actor[Job]):
        @handles(Job)
        async def job(self, msg: Job) -> str:
            await audience.tell(Report(text="from another actor"))
            return "echoed"

    echo = await actor_kit.spawn(Echo())
    elsewhere_told = asyncio.Event()

    class Chatty(Actor[Job]):
        @handles(Job)
        async def job(self, msg: Job) -> str:
            await elsewhere_told.wait()
            echoed = await ask(echo, Job(name="y"), timeout=5)
            # Tasks the handler creates are its own doing.
            await asyncio.gather(audience.tell(Report(text="gathered")), asyncio.sleep(0))
            await audience.tell(Report(text=echoed))
            return "ok"

    async def elsewhere() -> None:
        await audience.tell(Report(text="from the test"))
        elsewhere_told.set()

    outcome, _ = await asyncio.gather(run_handler(Chatty(), Job(name="x")), elsewhere())
    assert [(sent.recipient, sent.asked) for sent in outcome.sent] == [
        (echo, True),
        (audience, False),
        (audience, False),
    ]
    assert [sent.message.text for sent in outcome.sent[1:] if isinstance(sent.message, Report)] == [
        "gathered",
        "echoed",
    ]
    assert [m.text for m in await audience.receive_messages(4) if isinstance(m, Report)] == [
        "from the test",
        "from another actor",
        "gathered",
        "echoed",
    ]
    assert ActorRef.tell_nowait is original
    with pytest.raises(Boom):
        await run_handler(Boss(audience), Explode())
    assert ActorRef.tell_nowait is original
    await audience.expect_message(Report(text="about to explode"))


async def test_concurrent_runs_record_separately() -> None:
    first, second = TestProbe(Report), TestProbe(Report)
    outcomes = await asyncio.gather(
        run_handler(Boss(first), Job(name="a")),
        run_handler(Boss(second), Job(name="b")),
    )
    assert outcomes[0].sent[0].recipient == first
    assert outcomes[1].sent[0].recipient == second
    assert all(len(outcome.sent) == 2 for outcome in outcomes)


async def test_nothing_of_a_class_is_replaced_during_a_run() -> None:
    def attributes() -> list[object]:
        return [
            ActorRef.tell_nowait,
            ActorRef.ask,
            Reference.tell_nowait,
            Actor.register_child,
            Actor.supervise,
        ]

    originals = attributes()
    audience = TestProbe(Report)
    boss = Boss(audience)
    running = asyncio.ensure_future(run_handler(boss, Hold()))
    await audience.expect_message(Report(text="holding"))  # the handler is under way
    assert attributes() == originals
    boss.release.set()
    outcome = await asyncio.wait_for(running, 5)
    assert [sent.message.text for sent in outcome.sent if isinstance(sent.message, Report)] == ["holding"]


class Founder(Actor[Job]):
    """Supervises a helper, registers another and stops it again."""

    def __init__(self) -> None:
        super().__init__()
        self.during: list[Actor[Any]] = []

    @handles(Job)
    async def job(self, msg: Job) -> str:
        kept = await self.supervise(Helper, name=f"helper-{msg.name}")
        dropped = await self.register_child(Helper())
        await self.stop_child(dropped)
        self.during = self.children
        return kept.identifier


async def test_supervised_children_are_spawned_not_started() -> None:
    founder = Founder()
    outcome = await run_handler(founder, Job(name="x"))
    assert outcome.reply == "helper-x"
    kept, dropped = outcome.spawned
    assert isinstance(kept, Helper)
    assert kept.identifier == "helper-x"
    assert not kept.started
    assert dropped.stopped  # stopped by the handler: never started, its address closed
    assert founder.during == [kept]
    assert founder.children == []  # the run's children were its own
    assert (await run_handler(kept, Job(name="y"))).reply == "helped with y"


async def test_one_run_at_a_time_per_actor() -> None:
    audience = TestProbe(Report)
    boss = Boss(audience)
    holding = asyncio.ensure_future(run_handler(boss, Hold()))
    await audience.expect_message(Report(text="holding"))
    with pytest.raises(RuntimeError, match="one at a time"):
        await run_handler(boss, Hold())
    boss.release.set()
    await asyncio.wait_for(holding, 5)
    again = await run_handler(boss, Hold())  # released already: it returns at once
    assert [m.text for m in again.sent_to(audience) if isinstance(m, Report)] == ["holding"]
    await audience.expect_message(Report(text="holding"))


async def test_tasks_the_handler_leaves_running_record_no_more() -> None:
    audience = TestProbe(Report)
    release = asyncio.Event()
    left: list[asyncio.Task[None]] = []

    class Leaver(Actor[Job]):
        @handles(Job)
        async def job(self, msg: Job) -> str:
            async def later() -> None:
                await release.wait()
                await audience.tell(Report(text="later"))

            left.append(asyncio.ensure_future(later()))
            await audience.tell(Report(text="now"))
            return "left"

    other_audience = TestProbe(Report)
    other = Boss(other_audience)
    holding = asyncio.ensure_future(run_handler(other, Hold()))  # another run keeps observing on
    await other_audience.expect_message(Report(text="holding"))
    outcome = await run_handler(Leaver(), Job(name="x"))
    release.set()
    await asyncio.wait_for(left[0], 5)
    assert [sent.message.text for sent in outcome.sent if isinstance(sent.message, Report)] == ["now"]
    assert [m.text for m in await audience.receive_messages(2) if isinstance(m, Report)] == ["now", "later"]
    other.release.set()
    assert len((await asyncio.wait_for(holding, 5)).sent) == 1


class AwaitCancelled(Message[int]):
    pass


class AwaitsACancelledTask(Actor[AwaitCancelled]):
    @handles(AwaitCancelled)
    async def handle(self, msg: AwaitCancelled) -> int:
        await await_a_cancelled_task()
        return 0


async def test_run_handler_raises_the_failure_a_handler_s_own_cancelled_error_stands_for() -> None:
    """As the mainloop does (on Python 3.11+): the handler failed, nothing cancelled the test.
    It used to raise the `CancelledError` itself in the test's task."""
    with pytest.raises(RuntimeError, match="the handler of AwaitCancelled raised CancelledError"):
        await run_handler(AwaitsACancelledTask(), AwaitCancelled())
