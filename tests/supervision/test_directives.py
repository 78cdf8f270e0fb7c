"""Supervision directives are one of four: a mapping's values are checked where it is given, and
a decider function that returns anything else (or raises) fails its supervisor instead of
meaning "restart"."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import pytest

from actorio import Actor, ChildSpec, Decider, Directive, Message, SupervisorStrategy, handles
from actorio.testing import TestProbe
from tests.supervision.test_supervision import Boom, Fail, Journal, Supervisor, spec, start
from tests.support import bounded

ALLOWED = "'restart', 'resume', 'stop', 'escalate'"


def misspelt() -> Decider:
    return cast("Decider", {Boom: "stopp"})


def test_a_mapping_value_that_is_no_directive_is_a_value_error_where_it_is_given() -> None:
    message = f"on_failure maps Boom to 'stopp', which is no supervision directive: use one of {ALLOWED}"
    with pytest.raises(ValueError, match=message):
        ChildSpec(Actor, on_failure=misspelt())
    with pytest.raises(ValueError, match="SupervisorStrategy's decider maps Boom to 'stopp'"):
        SupervisorStrategy(decider=misspelt())


class Supervise(Message): ...


class Parent(Actor[Supervise]):
    @handles(Supervise)
    async def supervise_child(self, msg: Supervise) -> None:
        await self.supervise(Actor, on_failure=misspelt())


@pytest.mark.asyncio
async def test_supervise_refuses_a_mapping_value_that_is_no_directive() -> None:
    async with Parent() as ref:
        with pytest.raises(ValueError, match="on_failure maps Boom to 'stopp'"):
            await bounded(ref.ask(Supervise()))


@pytest.mark.asyncio
async def test_a_decider_returning_no_directive_fails_its_supervisor_naming_the_value() -> None:
    journal = Journal()

    def forgetful(error: BaseException) -> Directive:
        return cast("Directive", None)  # a branch forgotten: None is no directive

    supervisor = Supervisor([spec(journal, "a", on_failure=forgetful)])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    error = await TestProbe().expect_terminated(supervisor, error=ValueError)
    assert str(error) == (
        "the supervision decider test_a_decider_returning_no_directive_fails_its_supervisor_naming_the_value"
        f".<locals>.forgetful returned None for Boom, which is no supervision directive: it must return "
        f"one of {ALLOWED}"
    )
    assert isinstance(error.__cause__, Boom)
    assert journal.made == Counter({"a": 1})  # not restarted


@pytest.mark.asyncio
async def test_a_decider_that_raises_fails_its_supervisor_with_its_error() -> None:
    journal = Journal()

    def broken(error: BaseException) -> Directive:
        raise LookupError("no decision")

    supervisor = Supervisor([spec(journal, "a", on_failure=broken)])
    [ref] = await start(supervisor)
    await ref.tell(Fail())
    error = await TestProbe().expect_terminated(supervisor, error=LookupError)
    assert str(error) == "no decision"
    assert journal.made == Counter({"a": 1})


class FailsAtSetup(Actor):
    async def mainloop_setup(self) -> None:
        raise Boom("setup")


class Holder(Actor[Supervise]):
    @handles(Supervise)
    async def supervise_child(self, msg: Supervise) -> None:
        await self.supervise(ChildSpec(FailsAtSetup, on_failure=lambda error: cast(Any, "restrat")))


@pytest.mark.asyncio
async def test_a_decider_returning_no_directive_for_a_failed_setup_fails_its_supervisor() -> None:
    holder = Holder()
    ref = await holder.start()
    await ref.tell(Supervise())
    error = await TestProbe().expect_terminated(holder, error=ValueError)
    assert "returned 'restrat' for Boom, which is no supervision directive" in str(error)
