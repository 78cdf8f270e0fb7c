"""Pictures of a test: the recorded conversation as a Mermaid sequence diagram, the actor tree as
a Mermaid graph, and the diagram in a failed probe expectation."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from actorio import Actor, ActorRef, Message, handles
from actorio.testing import Arrow, Conversation, TestProbe, tree_diagram

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "examples") not in sys.path:
    sys.path.insert(0, str(ROOT / "examples"))

import conversation_diagram  # noqa: E402


class Ping(Message[str]):
    secret: str


class Note(Message):
    pass


class Boom(Message[None]):
    pass


class Echo(Actor[Ping | Boom]):
    def __init__(self, watcher: ActorRef[Note], identifier: str = "echo") -> None:
        super().__init__(identifier=identifier)
        self.watcher = watcher

    @handles(Ping)
    async def ping(self, message: Ping) -> str:
        await self.watcher.tell(Note())
        return "pong"

    @handles(Boom)
    async def boom(self, message: Boom) -> None:
        raise ValueError("boom")


@pytest.mark.asyncio
async def test_a_conversation_is_recorded_in_order_without_field_values() -> None:
    probe = TestProbe(Note, name="watcher")
    with Conversation() as conversation:
        async with Echo(probe) as echo:
            assert await echo.ask(Ping(secret="hunter2")) == "pong"
            with pytest.raises(ValueError, match="boom"):
                await echo.ask(Boom())
        await probe.expect_message(Note)
    assert conversation.arrows == [
        Arrow("test", "echo", "ask", "Ping"),
        Arrow("echo", "watcher", "tell", "Note"),
        Arrow("echo", "test", "reply", "str"),
        Arrow("test", "echo", "ask", "Boom"),
        Arrow("echo", "test", "raise", "ValueError"),
    ]
    diagram = conversation.sequence_diagram()
    assert "hunter2" not in diagram
    assert diagram == (
        "sequenceDiagram\n"
        "    participant p0 as test\n"
        "    participant p1 as echo\n"
        "    participant p2 as watcher\n"
        "    p0->>p1: ask Ping\n"
        "    p1-)p2: tell Note\n"
        "    p1-->>p0: str\n"
        "    p0->>p1: ask Boom\n"
        "    p1--xp0: raise ValueError\n"
    )


@pytest.mark.asyncio
async def test_a_failed_probe_expectation_prints_the_conversation_so_far() -> None:
    probe = TestProbe(Note, Ping, name="watcher")
    with Conversation():
        async with Echo(probe) as echo:
            await echo.ask(Ping(secret="x"))
        with pytest.raises(AssertionError) as caught:
            await probe.expect_message(Ping, timeout=0.01)
    text = str(caught.value)
    assert "the conversation so far (Mermaid):\nsequenceDiagram\n" in text
    assert "p0->>p1: ask Ping" in text


@pytest.mark.asyncio
async def test_labels_cannot_break_the_diagram() -> None:
    probe = TestProbe(Note, name="w")
    with Conversation() as conversation:
        async with Echo(probe, identifier='evil";\nA->>B: injected%%#') as echo:
            await echo.ask(Ping(secret="x"))
            from actorio.lowlevel import actor_of

            actor = actor_of(echo)
            assert actor is not None
            tree = tree_diagram(actor)
    for diagram in (conversation.sequence_diagram(), tree):
        for line in diagram.splitlines()[1:]:
            assert line.startswith("    ")
            assert not re.search(r'[;#:"\n]', line.split(": ", 1)[-1].replace('["', "").replace('"]', ""))
    assert "injected" in tree


@pytest.mark.asyncio
async def test_a_long_conversation_keeps_its_first_arrows() -> None:
    probe = TestProbe(Note, name="w")
    with Conversation(limit=3) as conversation:
        async with Echo(probe) as echo:
            for _ in range(3):
                await echo.ask(Ping(secret="x"))
    assert len(conversation.arrows) == 3
    assert conversation.dropped == 6
    assert conversation.sequence_diagram().endswith("Note over p0: 6 more not shown\n")


@pytest.mark.asyncio
async def test_a_conversation_that_keeps_no_arrow_still_draws() -> None:
    probe = TestProbe(Note, name="w")
    with Conversation(limit=0) as conversation:
        async with Echo(probe) as echo:
            await echo.ask(Ping(secret="x"))
    assert conversation.arrows == []
    assert conversation.dropped > 0
    note = f"Note over p0: {conversation.dropped} more not shown"
    assert conversation.sequence_diagram() == f"sequenceDiagram\n    participant p0 as ...\n    {note}\n"


@pytest.mark.asyncio
async def test_the_documented_diagrams_are_the_examples_output(capsys: pytest.CaptureFixture[str]) -> None:
    await conversation_diagram.main()
    printed = capsys.readouterr().out
    page = (ROOT / "docs" / "observability.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", page, re.S)
    assert "".join(blocks) == printed
