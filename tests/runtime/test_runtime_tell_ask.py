"""Promise 4, tell and ask: the ways to send, what the reply to an ask is (return value, first
thing told to the sender, or the reply of whoever the message was handed on to), the original
``handle_message`` style, and reply correlation."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from actorio import (
    NO_SENDER,
    Actor,
    ActorRef,
    ActorStopped,
    BaseRef,
    DataMessage,
    EndMainLoop,
    Message,
    Reference,
    ask,
    handles,
    lowlevel,
)
from actorio.testing import ActorTestKit, TestProbe


class Double(Message[int]):
    n: int


class Maybe(Message[str | None]):
    pass


class Say(Message[str]):
    text: str


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


class Doubler(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.told: list[int] = []

    @handles(Double)
    async def double(self, msg: Double) -> int:
        self.told.append(msg.n)
        return msg.n * 2

    @handles(Maybe)
    async def maybe(self, msg: Maybe) -> str | None:
        return None

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")


# -- the ways to send -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tell_tell_nowait_and_actor_tell_deliver() -> None:
    """Promise 4: ``await ref.tell(m)``, ``ref.tell_nowait(m)`` and ``await actor.tell(m)`` deliver."""
    actor = Doubler()
    async with actor as ref:
        await ref.tell(Double(n=1))
        ref.tell_nowait(Double(n=2))
        await actor.tell(Double(n=3))
        actor.tell_nowait(Double(n=4))
        assert await bounded(ref.ask(Double(n=5))) == 10
    assert actor.told == [1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_the_ways_to_ask_all_return_the_handler_result() -> None:
    """Promise 4: ``ref.ask(m, timeout=)``, ``ask(ref, m, timeout=)``, ``ask(actor, m)`` and
    ``actor.ask(m)`` all return the handler's return value."""
    actor = Doubler()
    async with actor as ref:
        assert await ref.ask(Double(n=1), timeout=2) == 2
        assert await ask(ref, Double(n=2), timeout=2) == 4
        assert await bounded(ask(actor, Double(n=3))) == 6
        assert await bounded(actor.ask(Double(n=4))) == 8
        assert await bounded(ref.ask(Double(n=5))) == 10


@pytest.mark.asyncio
async def test_a_message_reply_is_returned_as_it_is() -> None:
    """Promise 4: the reply is the returned object itself, typed by the message."""
    async with Doubler() as ref:
        reply = await ask(ref, Greet(name="World"), timeout=2)
    assert isinstance(reply, Greeting)
    assert reply.text == "Hello World!"


@pytest.mark.asyncio
async def test_none_returned_is_the_reply() -> None:
    """Promise 4: a handler returning None answers the ask with None (it does not hang)."""
    async with Doubler() as ref:
        assert await bounded(ref.ask(Maybe())) is None
        assert await bounded(ref.ask(Double(n=1))) == 2


# -- telling the sender first -----------------------------------------------------------------


class TellsFirst(Actor):
    @handles(Say)
    async def say(self, msg: Say) -> str:
        if msg.text == "sender.tell":
            await msg.sender.tell("told first")
        else:
            await msg.reply("replied first")
        return "returned"


@pytest.mark.asyncio
async def test_telling_the_sender_first_is_the_reply() -> None:
    """Promise 4: ``await msg.sender.tell(x)`` before returning makes x the reply."""
    async with TellsFirst() as ref:
        assert await bounded(ref.ask(Say(text="sender.tell"))) == "told first"


@pytest.mark.asyncio
async def test_reply_first_is_the_reply() -> None:
    """Promise 4: ``await msg.reply(x)`` before returning makes x the reply (unwrapped)."""
    async with TellsFirst() as ref:
        assert await bounded(ref.ask(Say(text="reply"))) == "replied first"
        assert await bounded(ref.ask(Say(text="sender.tell"))) == "told first"


# -- handing on -------------------------------------------------------------------------------


class ReturningChild(Actor):
    @handles(Say)
    async def say(self, msg: Say) -> str:
        return "child returned " + msg.text


class ReplyingChild(Actor):
    @handles(Say)
    async def say(self, msg: Say) -> str:
        await msg.reply("child replied " + msg.text)
        return "child returned"


class Forwarder(Actor):
    """Forwards every Say to its child and returns something else itself."""

    def __init__(self, child: Actor[Any]) -> None:
        super().__init__()
        self.child_actor = child
        self.child_ref: ActorRef[Any] | None = None

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.child_ref = await self.register_child(self.child_actor)

    @handles(Say)
    async def say(self, msg: Say) -> str:
        assert self.child_ref is not None
        await self.child_ref.tell(msg)
        return "forwarder returned"


class Relay(Actor):
    """Tells another actor a new message whose sender is the asker."""

    def __init__(self, target: ActorRef[Any]) -> None:
        super().__init__()
        self.target = target

    @handles(Say)
    async def say(self, msg: Say) -> str:
        await self.target.tell(Say(text="relayed " + msg.text, sender=msg.sender))
        return "relay returned"


@pytest.mark.asyncio
async def test_forwarded_to_a_child_that_replies_the_child_reply_is_the_reply() -> None:
    """Promise 4: forwarding the message to a child that replies: the child's reply is the reply,
    not the forwarder's return value."""
    async with Forwarder(ReplyingChild()) as ref:
        assert await bounded(ref.ask(Say(text="a"))) == "child replied a"
        assert await bounded(ref.ask(Say(text="b"))) == "child replied b"


@pytest.mark.asyncio
async def test_forwarded_to_a_child_whose_handler_returns_the_child_return_is_the_reply() -> None:
    """Promise 4: forwarding the message to a child whose @handles handler returns a value: that
    return value (the final answerer's reply) is the reply."""
    async with Forwarder(ReturningChild()) as ref:
        assert await bounded(ref.ask(Say(text="a"))) == "child returned a"


@pytest.mark.asyncio
async def test_new_message_with_the_askers_sender_replied_by_the_other_actor() -> None:
    """Promise 4: telling another actor a new message with ``sender=msg.sender``: that actor's
    reply is the reply."""
    async with ReplyingChild() as target, Relay(target) as ref:
        assert await bounded(ref.ask(Say(text="x"))) == "child replied relayed x"


@pytest.mark.asyncio
async def test_new_message_with_the_askers_sender_answered_by_a_return_value() -> None:
    """Promise 4: telling another actor a new message with ``sender=msg.sender``, whose handler
    returns a value: that return value is the reply."""
    async with ReturningChild() as target, Relay(target) as ref:
        assert await bounded(ref.ask(Say(text="x"))) == "child returned relayed x"


@pytest.mark.asyncio
async def test_two_hops_then_reply() -> None:
    """Promise 4: handed on twice, the last actor's reply is the reply."""
    async with ReplyingChild() as last, Relay(last) as middle, Relay(middle) as first:
        assert await bounded(first.ask(Say(text="x"))) == "child replied relayed relayed x"


class Boom(Exception):
    pass


class ParkedChild(Actor):
    """Answers Say with its return value, once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Say)
    async def say(self, msg: Say) -> str:
        self.entered.set()
        await self.release.wait()
        return "child returned " + msg.text


class FailingChild(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    @handles(Say)
    async def say(self, msg: Say) -> str:
        self.failures += 1
        raise Boom("child failed on " + msg.text)

    @handles(Double)
    async def double(self, msg: Double) -> int:
        return msg.n * 2


class WaitingForwarder(Actor):
    """Hands Say on to ``target``, waits until the target is inside its handler, then returns."""

    def __init__(self, target: ParkedChild) -> None:
        super().__init__()
        self.target = target

    @handles(Say)
    async def say(self, msg: Say) -> str:
        await self.target.reference.tell(msg)
        await self.target.entered.wait()
        return "forwarder returned"


class RelayThenEnd(Actor):
    """Hands Say on to ``target`` as a new message, then ends its own mainloop."""

    def __init__(self, target: ActorRef[Any]) -> None:
        super().__init__()
        self.target = target

    @handles(Say)
    async def say(self, msg: Say) -> str:
        await self.target.tell(Say(text="relayed " + msg.text, sender=msg.sender))
        raise EndMainLoop()


@pytest.mark.asyncio
async def test_handed_on_reply_comes_from_the_receiver_even_when_it_answers_after_the_forwarder() -> None:
    """Promise 4: the forwarder returns while the receiver is still parked: the forwarder's return
    value is not the reply; the receiver's later return value is."""
    child = ParkedChild()
    async with Forwarder(child) as ref:
        pending = asyncio.ensure_future(ref.ask(Say(text="a")))
        await bounded(child.entered.wait())
        assert not pending.done()
        child.release.set()
        assert await bounded(pending) == "child returned a"


@pytest.mark.asyncio
async def test_handed_on_reply_when_the_forwarder_returns_while_the_receiver_is_mid_handler() -> None:
    """Promise 4: the receiver starts serving before the forwarder's handler returns (a real
    interleaving): still exactly the receiver's return value is the reply."""
    child = ParkedChild()
    async with child, WaitingForwarder(child) as ref:
        pending = asyncio.ensure_future(ref.ask(Say(text="b")))
        await bounded(child.entered.wait())
        async with Doubler() as other:
            # Turns of the loop for the forwarder to finish its handler: a barrier, not a sleep.
            assert await bounded(other.ask(Double(n=1))) == 2
        assert not pending.done()
        child.release.set()
        assert await bounded(pending) == "child returned b"


@pytest.mark.asyncio
async def test_handed_on_then_end_main_loop_the_receiver_still_answers(actor_kit: ActorTestKit) -> None:
    """Promise 4/5: a handler that hands the ask on and then raises EndMainLoop ends its actor
    cleanly without failing the ask: the receiver answers it."""
    target = await actor_kit.spawn(ReturningChild())
    relay = RelayThenEnd(target)
    ref = await actor_kit.spawn(relay)
    assert await bounded(ref.ask(Say(text="c"))) == "child returned relayed c"
    # Not probe.expect_terminated(relay): it would also pass for a cancelled actor.
    assert await bounded(relay.wait()) is None


@pytest.mark.asyncio
async def test_handed_on_to_a_failing_receiver_raises_its_error_at_the_asker() -> None:
    """Promise 4: the receiver of a handed-on ask raises: the asker gets that error, and the
    receiver carries on."""
    child = FailingChild()
    async with Forwarder(child) as ref:
        with pytest.raises(Boom, match="child failed on d"):
            await bounded(ref.ask(Say(text="d")))
        assert await bounded(child.reference.ask(Double(n=2))) == 4
        assert child.running


@pytest.mark.asyncio
async def test_handed_on_to_a_stopped_actor_fails_the_ask_at_once() -> None:
    """Promise 4: handing an ask on to a stopped actor fails it with ActorStopped, not a hang."""
    target = ReturningChild()
    target_ref = await target.start()
    await bounded(target.stop())
    async with Relay(target_ref) as ref:
        with pytest.raises(ActorStopped):
            await bounded(ref.ask(Say(text="e")))


# -- the original handle_message style --------------------------------------------------------


class OriginalGreeter(Actor):
    """The seed README's hello-world actor, typed."""

    async def handle_message(self, message: Any) -> Any:
        await message.sender.tell(DataMessage(data="Hello World!", sender=self))
        await message.sender.tell(DataMessage(data="too late", sender=self))


@pytest.mark.asyncio
async def test_original_style_first_message_told_to_the_sender_answers_the_ask() -> None:
    """Promise 4: for handle_message, the first message told to the sender is the reply."""
    greeter = OriginalGreeter()
    async with greeter as ref:
        reply: DataMessage[Any] = await bounded(ask(ref, Message()))
        again: DataMessage[Any] = await bounded(ask(greeter, Message()))
    assert isinstance(reply, DataMessage)
    assert reply.data == "Hello World!"
    assert reply.sender is greeter.reference
    assert again.data == "Hello World!"


class OriginalLater(Actor):
    """Original style that answers held asks later, in reverse order, when told Flush."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Any, int]] = []

    async def handle_message(self, message: Any) -> Any:
        if isinstance(message, Double):
            self.held.append((message.sender, message.n))
            if len(self.held) == 5:
                for sender, n in reversed(self.held):
                    await sender.tell(DataMessage(data=n))


@pytest.mark.asyncio
async def test_original_style_held_asks_answered_later_each_get_their_own_reply() -> None:
    """Promise 4: senders held by handle_message and answered later, out of order: each ask gets
    its own reply."""
    async with OriginalLater() as ref:
        replies = await bounded(asyncio.gather(*(ref.ask(Double(n=n)) for n in range(5))))
    assert [reply.data for reply in replies] == [0, 1, 2, 3, 4]


@pytest.mark.asyncio
async def test_held_asks_answered_later_are_let_go_while_the_actor_runs() -> None:
    """An actor that holds its askers and answers them later keeps nothing of the asks it
    answered, nor of those whose asker gave up: held asks used to stay until the actor stopped
    (about 700 bytes each, without bound)."""

    class AnswersInFives(OriginalLater):
        async def handle_message(self, message: Any) -> Any:
            await super().handle_message(message)
            if len(self.held) == 5:
                self.held.clear()

    async with AnswersInFives() as ref:
        for _ in range(200):
            await bounded(asyncio.gather(*(ref.ask(Double(n=n)) for n in range(5))))
        for _ in range(200):  # never answered, their askers gave up: over as well
            with pytest.raises(asyncio.TimeoutError):
                await ref.ask(Message(), timeout=0.001)
        gc.collect()
        alive = sum(1 for thing in gc.get_objects() if type(thing) is lowlevel.AskRef)
    assert alive < 50, f"{alive} asks over, still kept by the actor"


class RequestMessage(Message):
    """The seed README's request."""


class ResponseMessage(DataMessage[Any]):
    """The seed README's response."""


class Worker(Actor):
    """The seed README's worker: reply to the sender, then end."""

    async def handle_message(self, message: Any) -> Any:
        await message.sender.tell(ResponseMessage(data=self.identifier, sender=self))
        raise EndMainLoop()


class Manager(Actor):
    """The seed README's manager: a child per request, the request forwarded to it."""

    def __init__(self) -> None:
        super().__init__()
        self.workers: list[Actor[Any]] = []
        self.stopped_children: list[tuple[Actor[Any], BaseException | None]] = []
        self.all_stopped = asyncio.Event()

    async def handle_message(self, message: Any) -> Any:
        if isinstance(message, RequestMessage):
            worker = Worker()
            self.workers.append(worker)
            self.all_stopped.clear()  # set again once this worker has stopped too
            child = await self.register_child(worker)
            await child.tell(message)

    async def handle_child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        self.stopped_children.append((child, task.exception()))
        if len(self.stopped_children) == len(self.workers):
            self.all_stopped.set()
        await super().handle_child_stopped(child, task)


@pytest.mark.asyncio
async def test_readme_manager_worker_replies_through_ask() -> None:
    """Promise 4: the README pattern: the manager forwards to a child that replies with
    ``message.sender.tell(...)``: the asker gets the child's ResponseMessage."""
    manager = Manager()
    async with manager as ref:
        replies = [await bounded(ask(ref, RequestMessage())) for _ in range(3)]
    assert [type(reply) for reply in replies] == [ResponseMessage] * 3
    assert [reply.data for reply in replies] == [worker.identifier for worker in manager.workers]
    assert [reply.sender for reply in replies] == [worker.reference for worker in manager.workers]


@pytest.mark.asyncio
async def test_readme_manager_worker_ends_each_worker_cleanly_through_ask() -> None:
    """Promise 4: in the README pattern served through ask, each worker's EndMainLoop ends it
    cleanly and the manager sees it stop without error."""
    manager = Manager()
    async with manager as ref:
        for _ in range(3):
            await bounded(ask(ref, RequestMessage()))
        await bounded(manager.all_stopped.wait())
        assert [error for _, error in manager.stopped_children] == [None, None, None]
        assert all(worker.stopped for worker in manager.workers)


@pytest.mark.asyncio
async def test_readme_manager_worker_with_a_reference_inbox() -> None:
    """Promise 5/README: the original told form: 10 requests, 10 responses in a Reference inbox,
    every worker ending cleanly."""
    me = Reference()
    manager = Manager()
    async with manager as ref:
        for _ in range(10):
            await ref.tell(RequestMessage(sender=me))
        responses = [await bounded(me.inbox.get()) for _ in range(10)]
        await bounded(manager.all_stopped.wait())
    assert sorted(response.data for response in responses) == sorted(w.identifier for w in manager.workers)
    assert [error for _, error in manager.stopped_children] == [None] * 10


# -- correlation ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_hundred_concurrent_asks_each_get_their_own_reply() -> None:
    """Promise 4: 100 concurrent asks from one sender with distinct payloads: each its own reply."""
    async with Doubler() as ref:
        replies = await bounded(asyncio.gather(*(ref.ask(Double(n=n)) for n in range(100))))
    assert replies == [n * 2 for n in range(100)]


class Replier(Actor):
    @handles(Double)
    async def double(self, msg: Double) -> int:
        await msg.reply(msg.n * 10)
        return -1


@pytest.mark.asyncio
async def test_a_tell_replying_to_a_reference_never_steals_an_asks_reply() -> None:
    """Promise 4: a told message whose reply goes to a Reference inbox, interleaved with asks:
    the asks get their own replies and the inbox gets the told ones."""
    me = Reference()
    async with Replier() as ref:
        await ref.tell(Double(n=1, sender=me))
        first = asyncio.ensure_future(ref.ask(Double(n=2)))
        await ref.tell(Double(n=3, sender=me))
        second = await bounded(ref.ask(Double(n=4)))
        assert await bounded(first) == 20
        assert second == 40
        inbox = [await bounded(me.inbox.get()) for _ in range(2)]
    assert [type(message) for message in inbox] == [DataMessage, DataMessage]
    assert [message.data for message in inbox] == [10, 30]
    assert me.inbox.empty()


class Inspector(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Say] = []

    @handles(Say)
    async def say(self, msg: Say) -> str:
        self.seen.append(msg)
        return msg.text


@pytest.mark.asyncio
async def test_while_serving_an_ask_sender_is_a_reference_made_for_that_ask() -> None:
    """Promise 4: the handler sees a copy whose sender is a fresh reference for this ask; the
    caller's message object is not passed and is unchanged."""
    actor = Inspector()
    original = Say(text="hi")
    async with actor as ref:
        assert await bounded(ref.ask(original)) == "hi"
        assert await bounded(ref.ask(original)) == "hi"
    first, second = actor.seen
    assert first is not original
    assert second is not original
    assert original.sender is NO_SENDER
    for seen in (first, second):
        assert isinstance(seen.sender, BaseRef)
        assert seen.sender is not NO_SENDER
        assert seen.sender
        assert seen.text == "hi"
        assert seen.creation_date == original.creation_date
    assert first.sender is not second.sender


@pytest.mark.asyncio
async def test_ask_leaves_a_callers_explicit_sender_untouched() -> None:
    """Promise 4: a caller's message with a Reference sender keeps it after the ask."""
    actor = Inspector()
    me = Reference()
    original = Say(text="hi", sender=me)
    async with actor as ref:
        assert await bounded(ref.ask(original)) == "hi"
    assert original.sender is me
    assert actor.seen[0].sender is not me
    assert me.inbox.empty()


# -- Reference and reply ----------------------------------------------------------------------


class Answers(Actor):
    @handles(Say)
    async def say(self, msg: Say) -> str:
        if msg.text == "message":
            await msg.sender.tell(Greeting(text="as is"))
        else:
            await msg.reply("wrapped")
        return "ignored for a tell"


@pytest.mark.asyncio
async def test_reply_to_a_reference_wraps_a_value_and_tells_a_message_as_it_is() -> None:
    """Promise 5: ``message.reply(value)`` to a Reference inbox: a plain value arrives in a
    DataMessage, a Message arrives as it is; a handler's return value for a tell goes nowhere."""
    me = Reference()
    async with Answers() as ref:
        await ref.tell(Say(text="value", sender=me))
        await ref.tell(Say(text="message", sender=me))
        wrapped = await bounded(me.inbox.get())
        as_is = await bounded(me.inbox.get())
        assert await bounded(ref.ask(Say(text="value"))) == "wrapped"
    assert isinstance(wrapped, DataMessage)
    assert wrapped.data == "wrapped"
    assert isinstance(as_is, Greeting)
    assert as_is.text == "as is"
    assert me.inbox.empty()


@pytest.mark.asyncio
async def test_reply_with_a_message_value_to_an_actor_sender(actor_kit: ActorTestKit) -> None:
    """Promise 5: ``reply`` to an actor sender tells that actor (wrapped in a DataMessage)."""
    client = TestProbe(DataMessage)  # an actor's reference, that records what it is told
    ref = await actor_kit.spawn(Answers())
    await ref.tell(Say(text="value", sender=client))
    message = await client.expect_message(DataMessage)
    assert type(message) is DataMessage
    assert message.data == "wrapped"
    await client.expect_no_message()  # the handler's return value, for a tell, goes nowhere
