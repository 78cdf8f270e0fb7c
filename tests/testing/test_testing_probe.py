"""actorio.testing.TestProbe: a reference that records what it is told, and its assertions.

Every wait is bounded by the probe's own timeout, and runs on a mock clock where it has to wait
at all, so that a timeout costs no real time.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

import pytest
from typing_extensions import assert_type

from actorio import (
    NO_REPLY,
    Actor,
    ActorRef,
    ActorStopped,
    DataMessage,
    EndMainLoop,
    Message,
    NoReply,
    ask,
    handles,
)
from actorio.testing import ActorTestKit, AskFailed, MockClock, TestProbe

pytestmark = pytest.mark.asyncio


class Greeting(Message):
    text: str


class Farewell(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Leave(Message[Farewell]):
    name: str


class Count(Message[int]):
    n: int


class Fail(Message[int]):
    pass


class Stop(Message):
    pass


class Crash(Message):
    pass


class Boom(Exception):
    pass


class Greeter(Actor[Greet | Leave | Count | Fail | Stop | Crash]):
    """Replies to its asker (or tells its sender); stops on Stop, fails on Crash."""

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Leave)
    async def leave(self, msg: Leave) -> Farewell:
        return Farewell(text=f"Bye {msg.name}!")

    @handles(Count)
    async def count(self, msg: Count) -> int:
        return msg.n + 1

    @handles(Fail)
    async def fail(self, msg: Fail) -> int:
        raise Boom("no count today")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        raise EndMainLoop()

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise Boom("crashed")


class Announcer(Actor[Greet]):
    """Tells what it greets to an audience given as an ``ActorRef[Greeting]``."""

    def __init__(self, audience: ActorRef[Greeting]) -> None:
        super().__init__()
        self.audience = audience

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        greeting = Greeting(text=f"Hello {msg.name}!")
        await self.audience.tell(greeting)
        return greeting


class Relay(Actor[Greet]):
    """Asks a helper (an ``ActorRef[Greet]``) and answers with the helper's reply, shouted."""

    def __init__(self, helper: ActorRef[Greet]) -> None:
        super().__init__()
        self.helper = helper

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        reply = await ask(self.helper, msg, timeout=5)
        return Greeting(text=reply.text.upper())


# -- a probe as a reference ------------------------------------------------------------------


async def test_probe_is_a_typed_reference_an_actor_tells(actor_kit: ActorTestKit) -> None:
    audience = TestProbe(Greeting)
    announcer = await actor_kit.spawn(Announcer(audience))
    await announcer.tell(Greet(name="Ada"))

    greeting = await audience.expect_message(Greeting)
    assert_type(greeting, Greeting)
    assert greeting.text == "Hello Ada!"
    assert greeting.sender is not None


async def test_probe_as_sender_receives_replies(actor_kit: ActorTestKit) -> None:
    class Polite(Actor):
        async def handle_message(self, message: Message) -> None:
            await message.sender.tell(Greeting(text="after you", sender=self))

    polite = await actor_kit.spawn(Polite())
    probe = TestProbe()
    await polite.tell(Message(sender=probe))
    reply = await probe.expect_message(Greeting(text="after you"))
    assert reply.sender == polite


async def test_reply_of_a_non_message_arrives_as_data_message(actor_kit: ActorTestKit) -> None:
    class Counter(Actor):
        async def handle_message(self, message: Message[Any]) -> None:
            await message.reply(41 + 1)

    counter = await actor_kit.spawn(Counter())
    probe = TestProbe()
    await counter.tell(Message(sender=probe))
    data = await probe.expect_message(DataMessage)
    assert data.data == 42


async def test_probe_refuses_messages_outside_its_protocol() -> None:
    probe = TestProbe(Greeting)
    with pytest.raises(TypeError, match=r"probe-\d+ does not accept Farewell \(its protocol: Greeting\)"):
        probe.tell_nowait(Farewell(text="x"))  # type: ignore[actorio-protocol]
    with pytest.raises(TypeError, match="only actorio Message instances"):
        probe.tell_nowait("hello")  # type: ignore[arg-type]
    assert probe.queued == ()


async def test_probe_without_protocol_accepts_any_message() -> None:
    probe = TestProbe(name="anything")
    assert probe.identifier == "anything"
    assert repr(probe) == "<TestProbe anything>"
    probe.tell_nowait(Greeting(text="a"))
    await probe.tell(Farewell(text="b"))
    assert [type(message) for message in probe.queued] == [Greeting, Farewell]


async def test_probe_of_several_types() -> None:
    probe = TestProbe(Greeting, Farewell)
    assert probe.message_types == (Greeting, Farewell)
    probe.tell_nowait(Farewell(text="b"))
    assert (await probe.expect_message(Farewell)).text == "b"


async def test_probe_rejects_non_message_classes() -> None:
    with pytest.raises(TypeError, match="TestProbe\\(\\) takes Message subclasses"):
        TestProbe(int)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]


async def test_probe_given_a_union_names_the_call_that_works() -> None:
    with pytest.raises(
        TypeError, match=re.escape("TestProbe(Greeting, Farewell), not TestProbe(Greeting | Farewell)")
    ):
        TestProbe(cast(Any, Greeting | Farewell))


async def test_narrowed_probe_records_in_the_same_probe() -> None:
    probe = TestProbe(Greeting, Farewell)
    greetings_only = probe.narrow(Greeting)
    assert greetings_only == probe
    assert hash(greetings_only) == hash(probe)
    await greetings_only.tell(Greeting(text="hi"))
    assert (await probe.expect_message(Greeting)).text == "hi"
    assert probe != TestProbe(Greeting, Farewell)


async def test_an_actor_asks_a_probe_and_the_test_replies(actor_kit: ActorTestKit) -> None:
    helper = TestProbe(Greet)
    relay = await actor_kit.spawn(Relay(helper))
    reply = asyncio.ensure_future(ask(relay, Greet(name="ada"), timeout=5))

    request = await helper.expect_message(Greet(name="ada"))
    await request.reply(Greeting(text="hello ada"))
    assert (await reply).text == "HELLO ADA"


async def test_an_ask_forwarded_to_a_probe_is_answered_by_the_test(actor_kit: ActorTestKit) -> None:
    class Front(Actor[Greet]):
        def __init__(self, back: ActorRef[Greet]) -> None:
            super().__init__()
            self.back = back

        @handles(Greet)
        async def greet(self, msg: Greet) -> NoReply:
            return await self.back.forward(msg)

    back = TestProbe(Greet)
    front = await actor_kit.spawn(Front(back))
    reply = asyncio.ensure_future(ask(front, Greet(name="x"), timeout=5))
    request = await back.expect_message(Greet)
    await request.reply(Greeting(text="from the back"))
    assert (await reply).text == "from the back"


# -- asking: typed replies to the probe ------------------------------------------------------


async def test_asking_sends_the_reply_to_the_probe(actor_kit: ActorTestKit) -> None:
    greeter = await actor_kit.spawn(Greeter())
    probe = TestProbe(Greeting)
    request = probe.asking(Greet(name="Ada"))
    assert_type(request, Greet)
    await greeter.tell(request)
    count = probe.asking(Count(n=1))
    await greeter.tell(count)

    assert (await probe.expect_message(Greeting)).text == "Hello Ada!"
    assert (await probe.expect_message(DataMessage)).data == 2


async def test_asking_a_failing_handler_sends_ask_failed(actor_kit: ActorTestKit) -> None:
    greeter = await actor_kit.spawn(Greeter())
    probe = TestProbe()
    request = probe.asking(Fail())
    await greeter.tell(request)
    failed = await probe.expect_message(AskFailed)
    assert isinstance(failed.error, Boom)
    assert isinstance(failed.request, Fail)


async def test_asking_a_stopped_actor_sends_ask_failed(actor_kit: ActorTestKit) -> None:
    greeter = Greeter()
    await actor_kit.spawn(greeter)
    await greeter.stop()
    probe = TestProbe()
    request = probe.asking(Greet(name="late"))
    await greeter.reference.tell(request)
    failed = await probe.expect_message(AskFailed)
    assert isinstance(failed.error, ActorStopped)


async def test_asking_needs_a_running_loop() -> None:
    probe = TestProbe()

    def outside_the_loop() -> None:
        probe.asking(Greet(name="x"))

    with pytest.raises(RuntimeError, match="no running event loop"):
        await asyncio.get_running_loop().run_in_executor(None, outside_the_loop)


# -- expect_message ---------------------------------------------------------------------------


async def test_expect_message_by_instance_ignores_sender_and_creation_date() -> None:
    probe = TestProbe()
    probe.tell_nowait(Greeting(text="hi", sender=TestProbe(name="someone")))
    received = await probe.expect_message(Greeting(text="hi"))
    assert_type(received, Greeting)
    assert received.sender.identifier == "someone"


async def test_expect_message_compares_nested_messages_by_content() -> None:
    class Envelope(Message):
        inner: Greeting
        tags: list[str]

    probe = TestProbe()
    probe.tell_nowait(Envelope(inner=Greeting(text="hi"), tags=["a"]))
    await probe.expect_message(Envelope(inner=Greeting(text="hi"), tags=["a"]))
    probe.tell_nowait(Envelope(inner=Greeting(text="hi"), tags=["a"]))
    with pytest.raises(AssertionError, match=re.escape("but received Envelope(inner=Greeting(text='hi')")):
        await probe.expect_message(Envelope(inner=Greeting(text="ho"), tags=["a"]))


async def test_expect_message_failure_names_what_arrived_instead(actor_kit: ActorTestKit) -> None:
    greeter = await actor_kit.spawn(Greeter())
    probe = TestProbe(name="inbox")
    await probe.tell(Farewell(text="bye", sender=greeter))
    await probe.tell(Greeting(text="late"))

    with pytest.raises(AssertionError) as failure:
        await probe.expect_message(Greeting)
    message = str(failure.value)
    assert message == (
        f"inbox expected a Greeting, but received Farewell(text='bye') from {greeter.identifier}; "
        "queued after it: Greeting(text='late')"
    )


async def test_expect_message_failure_shows_both_messages() -> None:
    probe = TestProbe(name="inbox")
    probe.tell_nowait(Greeting(text="Hello Bob!"))
    with pytest.raises(AssertionError) as failure:
        await probe.expect_message(Greeting(text="Hello Ada!"))
    assert str(failure.value) == (
        "inbox expected Greeting(text='Hello Ada!'), but received Greeting(text='Hello Bob!')"
    )


async def test_expect_message_timeout_says_nothing_arrived_and_recalls_the_last(
    mock_clock: MockClock,
) -> None:
    probe = TestProbe(name="inbox")
    probe.tell_nowait(Greeting(text="first"))
    await probe.expect_message(Greeting)
    with pytest.raises(AssertionError) as failure:
        await probe.expect_message(Farewell, timeout=2.5)
    assert str(failure.value) == (
        "inbox expected a Farewell within 2.5 s, but no message arrived "
        "(the last messages it took: Greeting(text='first'))"
    )
    assert mock_clock.time() == 2.5


async def test_expect_message_waits_for_a_late_message(mock_clock: MockClock) -> None:
    probe = TestProbe()
    asyncio.get_running_loop().call_later(2.0, probe.tell_nowait, Greeting(text="late"))
    assert (await probe.expect_message(Greeting, timeout=3.0)).text == "late"
    assert mock_clock.time() == 2.0


# -- expect_no_message, receive_messages, fish_for_message ------------------------------------


async def test_expect_no_message_passes_in_silence(mock_clock: MockClock) -> None:
    probe = TestProbe()
    await probe.expect_no_message(within=30)
    assert mock_clock.time() == 30


async def test_expect_no_message_fails_naming_the_message(mock_clock: MockClock) -> None:
    probe = TestProbe(name="inbox")
    asyncio.get_running_loop().call_later(0.05, probe.tell_nowait, Greeting(text="surprise"))
    with pytest.raises(
        AssertionError,
        match=re.escape("inbox expected no message within 0.1 s, but received Greeting(text='surprise')"),
    ):
        await probe.expect_no_message()
    assert mock_clock.time() == 0.05


async def test_expect_no_message_within_zero_checks_the_queue_only() -> None:
    probe = TestProbe()
    await probe.expect_no_message(within=0)
    probe.tell_nowait(Greeting(text="x"))
    with pytest.raises(AssertionError, match="Greeting"):
        await probe.expect_no_message(within=0)


async def test_receive_messages_in_arrival_order() -> None:
    probe = TestProbe()
    for text in ("a", "b", "c"):
        probe.tell_nowait(Greeting(text=text))
    received = await probe.receive_messages(2)
    assert [message.text for message in received if isinstance(message, Greeting)] == ["a", "b"]
    last = await probe.receive_message()
    assert isinstance(last, Greeting)
    assert last.text == "c"
    assert probe.queued == ()


async def test_receive_messages_failure_names_what_arrived(mock_clock: MockClock) -> None:
    probe = TestProbe(name="inbox")
    probe.tell_nowait(Greeting(text="only one"))
    with pytest.raises(AssertionError) as failure:
        await probe.receive_messages(3, timeout=1)
    assert str(failure.value).startswith(
        "inbox expected 3 messages within 1 s, but received 1: Greeting(text='only one')"
    )
    with pytest.raises(AssertionError, match="expected 1 messages within 3 s, but none arrived"):
        await probe.receive_message()


async def test_fish_for_message_discards_until_a_match() -> None:
    probe = TestProbe()
    for text in ("a", "b", "target", "after"):
        probe.tell_nowait(Greeting(text=text))
    fished = await probe.fish_for_message(
        lambda message: isinstance(message, Greeting) and message.text == "target"
    )
    assert isinstance(fished, Greeting)
    assert fished.text == "target"
    probe.tell_nowait(Farewell(text="bye"))
    farewell = await probe.fish_for_message(Farewell)
    assert_type(farewell, Farewell)
    assert farewell.text == "bye"
    assert probe.queued == ()


async def test_fish_for_message_failure_names_the_discarded(mock_clock: MockClock) -> None:
    probe = TestProbe(name="inbox")
    probe.tell_nowait(Greeting(text="a"))
    probe.tell_nowait(Greeting(text="b"))
    with pytest.raises(AssertionError) as failure:
        await probe.fish_for_message(Farewell, timeout=1)
    assert str(failure.value).startswith(
        "inbox fished for a Farewell for 1 s, but received only Greeting(text='a'), Greeting(text='b')"
    )
    with pytest.raises(AssertionError, match=r"fished for a message matching .* but no message arrived"):
        await probe.fish_for_message(lambda message: False, timeout=1)


async def test_long_failures_are_shortened() -> None:
    probe = TestProbe(name="inbox")
    for n in range(15):
        probe.tell_nowait(Greeting(text="x" * 200 + str(n)))
    with pytest.raises(AssertionError) as failure:
        await probe.expect_message(Farewell)
    text = str(failure.value)
    assert "and 4 more" in text
    assert len(text) < 2500


# -- expect_terminated ------------------------------------------------------------------------


async def test_expect_terminated_after_a_clean_stop(actor_kit: ActorTestKit) -> None:
    greeter = await actor_kit.spawn(Greeter())
    probe = TestProbe()
    await greeter.tell(Stop())
    await probe.expect_terminated(greeter)
    await probe.expect_terminated(greeter.narrow(Greet))  # any reference to it


async def test_expect_terminated_with_the_expected_error(actor_kit: ActorTestKit) -> None:
    greeter = Greeter()
    reference = await actor_kit.spawn(greeter)
    await reference.tell(Crash())
    error = await TestProbe().expect_terminated(reference, error=Boom)
    assert_type(error, Boom)
    assert str(error) == "crashed"


async def test_expect_terminated_failures(actor_kit: ActorTestKit, mock_clock: MockClock) -> None:
    probe = TestProbe(name="watcher")
    running = Greeter(identifier="running")
    await actor_kit.spawn(running)
    with pytest.raises(
        AssertionError, match="watcher expected running to stop within 1 s, but it is still running"
    ):
        await probe.expect_terminated(running, timeout=1)
    assert mock_clock.time() == 1

    with pytest.raises(AssertionError, match="expected idle to stop, but it was never started"):
        await probe.expect_terminated(Greeter(identifier="idle"))

    crashed = Greeter(identifier="crashed")
    await actor_kit.spawn(crashed)
    await crashed.tell(Crash())
    with pytest.raises(
        AssertionError, match=re.escape("expected crashed to stop, but it failed with Boom('crashed')")
    ):
        await probe.expect_terminated(crashed)
    with pytest.raises(
        AssertionError, match="expected crashed to fail with KeyError, but it failed with Boom"
    ):
        await probe.expect_terminated(crashed, error=KeyError)

    stopped = Greeter(identifier="stopped")
    await actor_kit.spawn(stopped)
    await stopped.tell(Stop())
    with pytest.raises(
        AssertionError, match="expected stopped to fail with Boom, but it stopped without an error"
    ):
        await probe.expect_terminated(stopped, error=Boom)

    with pytest.raises(TypeError, match="a probe never terminates"):
        await probe.expect_terminated(TestProbe())


async def test_expect_terminated_of_an_actor_stopped_before_it_started() -> None:
    greeter = Greeter()
    await greeter.stop()
    await TestProbe().expect_terminated(greeter)


async def test_probe_is_not_collected_as_a_test_class() -> None:
    assert TestProbe.__test__ is False
    assert NO_REPLY is not None  # the name is re-exported for tests that compare replies
