"""The messages and actors that the NATS tests publish, in the test process and in workers."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

from actorio import Actor, Message, handles


class Greeting(Message):
    text: str


class Greet(Message[Greeting]):
    name: str


class Fail(Message[int]):
    reason: str


class Double(Message[int]):
    value: int


class Record(Message):
    """Told: the number is kept; a `Greeting` is told back to the sender, if any."""

    n: int


class Report(Message[list[int]]):
    """Asked: every number recorded so far, in arrival order."""


class Greeter(Actor[Greet | Fail | Double | Record | Report]):
    def __init__(self, identifier: str | None = None) -> None:
        super().__init__(identifier=identifier)
        self.recorded: list[int] = []

    @handles(Greet)
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"Hello {msg.name}!")

    @handles(Fail)
    async def fail(self, msg: Fail) -> int:
        raise ValueError(f"no luck: {msg.reason}")

    @handles(Double)
    async def double(self, msg: Double) -> int:
        return 2 * msg.value

    @handles(Record)
    async def record(self, msg: Record) -> None:
        self.recorded.append(msg.n)
        if msg.sender:
            await msg.sender.tell(Greeting(text=f"recorded {msg.n}"))

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return list(self.recorded)


class Job(Message):
    id: int


class Recorder(Actor[Job | Report]):
    """Handles jobs, appending ``done <id>`` to a file; at ``hang_at`` it writes ``start <id>``
    and never finishes (to be killed mid-handler); at each of ``poison`` it writes ``fail <id>``
    and raises."""

    def __init__(self, path: Path, hang_at: int | None = None, poison: Collection[int] = ()) -> None:
        super().__init__()
        self.path = path
        self.hang_at = hang_at
        self.poison = set(poison)
        self.done: list[int] = []

    @handles(Job)
    async def job(self, msg: Job) -> None:
        with self.path.open("a") as file:
            if msg.id in self.poison:
                file.write(f"fail {msg.id}\n")
                raise ValueError(f"job {msg.id} is poison")
            if msg.id == self.hang_at:
                file.write(f"start {msg.id}\n")
                file.flush()
                await asyncio.Event().wait()  # killed here
            file.write(f"done {msg.id}\n")
        self.done.append(msg.id)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return list(self.done)


def handled_ids(path: Path, kind: str = "done") -> list[int]:
    """The ids a `Recorder` wrote as done (or as ``kind``: ``fail``); a line cut by a kill is
    ignored."""
    if not path.exists():
        return []
    ids: list[int] = []
    for line in path.read_text().splitlines():
        written, _, number = line.partition(" ")
        if written == kind and number.isdigit():
            ids.append(int(number))
    return ids
