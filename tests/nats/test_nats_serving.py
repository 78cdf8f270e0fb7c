"""Published actors outlive their messages, on a real nats-server: an actor instance resumes after
a failing message, an actor made from a factory is restarted (with backoff) under a supervisor of
the node's, a publication whose supervision gives up ends alone, and the node's close stops only
the actors it made."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import ClassVar

import pytest

from actorio import (
    Actor,
    ActorStopped,
    Backoff,
    ChildSpec,
    Message,
    SupervisorStrategy,
    dead_letters,
    handles,
)
from actorio.nats import ActorNotFound, Durable, Node
from actorio.nats._keeper import PUBLICATION_STRATEGY
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Crash(Message):
    """Told: the handler raises."""

    reason: str = "boom"


class Count(Message):
    """Told: counted."""


class Total(Message[int]):
    """Asked: how many `Count` this incarnation has handled."""


class Serial(Message[int]):
    """Asked: which incarnation answers (1 for the first)."""


class Counter(Actor[Crash | Count | Total | Serial]):
    made: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Counter.made += 1
        self.serial = Counter.made
        self.total = 0

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise ValueError(msg.reason)

    @handles(Count)
    async def count(self, msg: Count) -> None:
        self.total += 1

    @handles(Total)
    async def get_total(self, msg: Total) -> int:
        return self.total

    @handles(Serial)
    async def get_serial(self, msg: Serial) -> int:
        return self.serial


@pytest.fixture(autouse=True)
def fresh_counter() -> None:
    Counter.made = 0


async def test_an_actor_instance_resumes_after_a_failing_message(node: Node) -> None:
    """It cannot be made again: the failed message is a dead letter, the same actor goes on with
    its state (it used to stop, and leave the name, at the first failure)."""
    counter = Counter()
    publication = await node.publish("resumed", counter)
    remote = node.ref("resumed", Counter)
    for _ in range(25):
        await remote.tell(Count())
        await remote.tell(Crash())
    assert await remote.ask(Total(), timeout=10) == 25  # its state is kept
    assert publication.actor is counter
    assert counter.running
    assert publication.active
    assert len(dead_letters.of(recipient=counter.identifier, reason="failed")) == 25
    await counter.stop()

    async def left() -> bool:
        return not publication.active

    await wait_until(left, 10)  # stopped for good: the publication ends


async def test_an_actor_made_from_a_factory_is_restarted_and_stays_published(node: Node) -> None:
    publication = await node.publish("restarted", Counter)
    first = publication.actor
    assert first.identifier == "restarted"  # named after the publication
    remote = node.ref("restarted", Counter)
    await remote.tell(Count())
    assert await remote.ask(Serial(), timeout=10) == 1
    for expected in (2, 3, 4):
        await remote.tell(Crash())
        await remote.tell(Count())  # queued behind the failure: the next incarnation handles it
        assert await remote.ask(Serial(), timeout=10) == expected
        assert await remote.ask(Total(), timeout=10) == 1  # a fresh state, then this Count
    assert publication.actor is not first
    assert publication.active
    assert publication.actor.identifier == "restarted"


async def test_restarts_of_a_publication_wait_a_growing_delay(node: Node) -> None:
    backoff = Backoff(min_delay=0.2, max_delay=1.0, factor=2.0)
    await node.publish("slowed", Counter, supervision=SupervisorStrategy(backoff=backoff, max_restarts=100))
    remote = node.ref("slowed", Counter)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    for _ in range(3):
        started = loop.time()
        await remote.tell(Crash())
        await remote.ask(Serial(), timeout=10)  # answered by the next incarnation
        gaps.append(loop.time() - started)
    # The delays are the least the supervisor waits; a busy machine only makes them longer.
    assert gaps[0] >= 0.2 * 0.9
    assert gaps[1] >= 0.4 * 0.9
    assert gaps[2] >= 0.8 * 0.9


async def test_a_publication_that_gives_up_ends_alone(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """One publication exhausting its restart intensity ends (logged); the node's other
    publications, of factories and of instances, go on."""
    strict = SupervisorStrategy(max_restarts=2, within=60.0)
    doomed = await node.publish("doomed", Counter, supervision=strict)
    other = await node.publish("other", Counter, supervision=strict)
    instance = Counter()
    await node.publish("instance", instance)
    remote = node.ref("doomed", Counter)
    with caplog.at_level(logging.ERROR, logger="actorio.nats"):
        for _ in range(3):
            await remote.tell(Crash())

        async def ended() -> bool:
            return not doomed.active

        await wait_until(ended, 10)
    assert "'doomed' is no longer published by this process" in caplog.text
    assert "RestartIntensityExceeded" in caplog.text
    with pytest.raises(ActorNotFound):
        await remote.ask(Serial(), timeout=5)
    assert other.active
    assert await node.ref("other", Counter).ask(Serial(), timeout=10) >= 1
    assert await node.ref("instance", Counter).ask(Total(), timeout=10) == 0
    # The name can be published again.
    again = await node.publish("doomed", Counter)
    assert again.active
    assert await remote.ask(Total(), timeout=10) == 0
    await instance.stop()


async def test_the_publication_default_restarts_for_as_long_as_it_fails(node: Node) -> None:
    """Five failures in a row within five seconds (more than the core's default intensity) do not
    end a publication: its default policy restarts, ever later."""
    publication = await node.publish("stubborn", Counter)
    remote = node.ref("stubborn", Counter)
    for _ in range(5):
        await remote.tell(Crash())
    assert await remote.ask(Serial(), timeout=30) == 6
    assert publication.active


async def test_the_default_backoff_stays_under_the_default_intensity() -> None:
    """The documented claim, computed: failing at once after every restart, the restarts the
    default backoff allows in any window of ``within`` seconds never exceed ``max_restarts``."""
    strategy = PUBLICATION_STRATEGY
    backoff = strategy.backoff
    assert backoff is not None
    failures = [0.0]
    for attempt in range(200):  # the shortest delays: no jitter
        failures.append(failures[-1] + min(backoff.max_delay, backoff.min_delay * backoff.factor**attempt))
    busiest = max(sum(1 for t in failures if start <= t < start + strategy.within) for start in failures)
    assert busiest <= strategy.max_restarts


async def test_a_child_spec_chooses_the_child_options(node: Node) -> None:
    spec = ChildSpec(Counter, name="kept-count", on_failure={ValueError: "resume"})
    publication = await node.publish("spec", spec)
    remote = node.ref("spec", Counter)
    await remote.tell(Count())
    await remote.tell(Crash())
    assert await remote.ask(Total(), timeout=10) == 1  # resumed: the same incarnation
    assert publication.actor.identifier == "kept-count"
    assert Counter.made == 1


async def test_a_decider_can_stop_an_instance(node: Node) -> None:
    counter = Counter()
    stop_on_value_error = SupervisorStrategy(decider={ValueError: "stop"})
    publication = await node.publish("stoppable", counter, supervision=stop_on_value_error)
    await node.ref("stoppable", Counter).tell(Crash())

    async def left() -> bool:
        return not publication.active

    await wait_until(left, 10)
    assert counter.stopped


async def test_an_instance_is_never_restarted(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    counter = Counter()
    restart = SupervisorStrategy(decider=lambda error: "restart")
    publication = await node.publish("once", counter, supervision=restart)
    with caplog.at_level(logging.ERROR, logger="actorio.nats"):
        await node.ref("once", Counter).tell(Crash())

        async def left() -> bool:
            return not publication.active

        await wait_until(left, 10)
    assert "an actor instance cannot be restarted" in caplog.text
    assert Counter.made == 1


async def test_a_running_actor_is_published_as_it_is(node: Node) -> None:
    counter = Counter()
    await counter.start()
    with pytest.raises(ValueError, match="running already"):
        await node.publish("running", counter, supervision=SupervisorStrategy())
    publication = await node.publish("running", counter)
    assert publication.actor is counter
    await counter.stop()
    with pytest.raises(ActorStopped):
        await node.publish("running", counter)


async def test_what_cannot_be_published(node: Node) -> None:
    with pytest.raises(TypeError, match="takes an actor, a local reference or a factory, not RemoteRef"):
        await node.publish("remote", node.ref("elsewhere"))
    with pytest.raises(TypeError, match="not int"):
        await node.publish("number", 3)  # type: ignore[arg-type]

    class Broken(Actor[Count]):
        def __init__(self) -> None:
            raise RuntimeError("cannot make it")

        @handles(Count)
        async def count(self, msg: Count) -> None:
            pass

    with pytest.raises(RuntimeError, match="cannot make it"):
        await node.publish("broken", Broken)
    with pytest.raises(RuntimeError, match="cannot make it"):
        await node.publish("broken-durable", Broken, durable=Durable())
    with pytest.raises(ActorNotFound):  # nothing was published
        await node.ref("broken", Counter).ask(Total(), timeout=5)


async def test_a_factory_with_arguments(node: Node) -> None:
    class Greeter(Actor[Serial]):
        def __init__(self, answer: int) -> None:
            super().__init__()
            self.answer = answer

        @handles(Serial)
        async def serial(self, msg: Serial) -> int:
            return self.answer

    await node.publish("partial", functools.partial(Greeter, 42))
    await node.publish("lambda", lambda: Greeter(7))
    assert await node.ref("partial", Greeter).ask(Serial(), timeout=10) == 42
    assert await node.ref("lambda", Greeter).ask(Serial(), timeout=10) == 7


async def test_close_stops_what_the_node_made_and_not_what_it_was_given(nats_url: str) -> None:
    given = Counter()
    async with await Node.connect(nats_url) as node:
        made = await node.publish("made", Counter)
        await node.publish("given", given)
        made_actor = made.actor
    assert made_actor.stopped
    assert given.running
    await given.stop()
