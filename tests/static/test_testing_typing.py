"""The test kit's static types, for both checkers: mypy checks this file with the rest of tests/,
and pyright (strict) in its run over the project (pyproject.toml includes this file). Lines that
must fail carry an ignore comment for each checker; unused ignores are errors for both, so a
misuse that stops failing is caught.

The functions run as tests too, so the types are those of real values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typing_extensions import assert_type

from actorio import Actor, ActorRef, Message, NoReply, handles
from actorio.testing import ActorTestKit, HandlerOutcome, TestProbe, run_handler
from tests.static.project_pyright import PyrightReport


class Greeting(Message):
    text: str


class Farewell(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Stop(Message):
    pass


class Greeter(Actor[Greet | Stop]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Stop)
    async def stop_now(self, msg: Stop) -> None:
        await self.stop()


class Announcer(Actor[Greet]):
    def __init__(self, audience: ActorRef[Greeting]) -> None:
        super().__init__()
        self.audience = audience

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        greeting = Greeting(text=msg.name)
        await self.audience.tell(greeting)
        return greeting


def wants_greeter(ref: ActorRef[Greet | Stop]) -> ActorRef[Greet | Stop]:
    return ref


def wants_greet_only(ref: ActorRef[Greet]) -> ActorRef[Greet]:
    return ref


def test_a_probe_is_an_actor_ref_of_its_protocol() -> None:
    audience = TestProbe(Greeting)
    assert_type(audience, TestProbe[Greeting])
    Announcer(audience)  # where an ActorRef[Greeting] is expected
    both = TestProbe(Greet, Stop)
    assert_type(both, TestProbe[Greet | Stop])
    wants_greeter(both)
    wants_greet_only(both)  # ActorRef is contravariant: a wider protocol will do
    explicit: TestProbe[Greet | Stop] = TestProbe()
    wants_greeter(explicit)
    untyped = TestProbe()
    assert_type(untyped, TestProbe[Message[Any]])
    Greet(name="x", sender=audience)  # a probe is a sender


@pytest.mark.asyncio
async def test_a_probe_of_another_protocol_is_refused() -> None:
    """Statically, a probe is refused where a reference of another protocol is expected (the ignore
    comments); at run time, what it would then be told is refused at the sender and never queued."""
    farewells = TestProbe(Farewell)
    announcer = Announcer(farewells)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"does not accept Greeting \(its protocol: Farewell\)"):
        await run_handler(announcer, Greet(name="x"))
    assert farewells.queued == ()
    greets = TestProbe(Greet)
    greeter = wants_greeter(greets)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"does not accept Stop \(its protocol: Greet\)"):
        greeter.tell_nowait(Stop())
    assert greets.queued == ()


@pytest.mark.asyncio
async def test_what_the_probe_returns_is_typed() -> None:
    probe = TestProbe(Greeting, Farewell)
    for text in ("a", "b", "c", "d"):
        probe.tell_nowait(Greeting(text=text))
    probe.tell_nowait(Farewell(text="e"))
    assert_type(await probe.expect_message(Greeting), Greeting)
    assert_type(await probe.expect_message(Greeting(text="b")), Greeting)
    assert_type(await probe.receive_messages(1), list[Message[Any]])
    assert_type(await probe.fish_for_message(lambda message: True), Message[Any])
    assert_type(await probe.fish_for_message(Farewell), Farewell)
    assert_type(probe.asking(Greet(name="x")), Greet)
    assert_type(probe.queued, tuple[Message[Any], ...])


@pytest.mark.asyncio
async def test_expect_terminated_returns_the_expected_error(actor_kit: ActorTestKit) -> None:
    greeter = Greeter()
    reference = await actor_kit.spawn(greeter)
    assert_type(reference, ActorRef[Greet | Stop])
    await reference.tell(Stop())
    assert_type(await TestProbe().expect_terminated(reference), None)


@pytest.mark.asyncio
async def test_run_handler_is_typed_by_the_message() -> None:
    outcome = await run_handler(Greeter(), Greet(name="x"))
    assert_type(outcome, HandlerOutcome[Greet, Greeting])
    assert_type(outcome.reply, Greeting | NoReply)
    assert_type(outcome.message, Greet)


@pytest.mark.static
@pytest.mark.timeout(300)  # the first to ask runs pyright over the project
def test_pyright_strict_agrees(pyright_report: PyrightReport) -> None:
    """From the project's pyright run (tests/static/conftest.py), which includes this file."""
    here = Path(__file__)
    assert pyright_report.covers(here), pyright_report.include
    assert not pyright_report.errors(here), "\n".join(pyright_report.errors(here))
