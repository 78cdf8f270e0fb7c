"""The hand-written actor every figure is compared with, and the same actor written with actorio.

The baseline is what a careful developer writes without a library: one task per actor, an
``asyncio.Queue`` mailbox, a dict that dispatches by message type, and a future per ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from actorio import Actor, Message, handles


class Ping(Message):
    """A told message."""

    n: int


class Echo(Message[int]):
    """An asked message, answered with its number."""

    n: int


class SlotPing:
    """The hand-written side's told message: a plain class with ``__slots__``, no validation."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class SlotEcho:
    """The hand-written side's asked message, answered with its number."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Stop:
    """Ends a baseline actor's loop."""


class BaselineActor:
    """One task, an ``asyncio.Queue``, dict dispatch by type, a future per ask."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[Any] | None]] = asyncio.Queue()
        self.handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {
            Ping: self.on_ping,
            Echo: self.on_echo,
            SlotPing: self.on_ping,
            SlotEcho: self.on_echo,
        }
        self.count = 0
        self.task: asyncio.Task[None] | None = None

    async def on_ping(self, message: Ping | SlotPing) -> None:
        self.count += 1

    async def on_echo(self, message: Echo | SlotEcho) -> int:
        return message.n

    async def run(self) -> None:
        while True:
            message, future = await self.queue.get()
            if type(message) is _Stop:
                return
            try:
                result = await self.handlers[type(message)](message)
            except Exception as error:
                if future is None:
                    raise
                future.set_exception(error)
                continue
            if future is not None and not future.done():
                future.set_result(result)

    async def start(self) -> BaselineActor:
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def stop(self) -> None:
        self.queue.put_nowait((_Stop(), None))
        assert self.task is not None
        await self.task

    async def tell(self, message: Any) -> None:
        self.queue.put_nowait((message, None))

    async def ask(self, message: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((message, future))
        return await future


class YieldingBaselineActor(BaselineActor):
    """The hand-written actor with actorio's catch-up: its ``tell`` yields to the loop once when
    the queue holds a multiple of 256 messages, so that a burst is handled while it is young
    (what ``ActorRef.tell`` does; see docs/performance.md). A careful developer may write it
    too: the row that uses it says what the catch-up buys the hand-written side."""

    async def tell(self, message: Any) -> None:
        queue = self.queue
        if queue.qsize() and not queue.qsize() % 256:
            await asyncio.sleep(0)
        queue.put_nowait((message, None))


class Counter(Actor[Ping | Echo]):
    """The same actor, written with actorio."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(Ping)
    async def on_ping(self, message: Ping) -> None:
        self.count += 1

    @handles(Echo)
    async def on_echo(self, message: Echo) -> int:
        return message.n


SIDES: dict[str, Callable[[], Any]] = {"actorio": Counter, "baseline": BaselineActor}
"""How each side makes one actor; both have ``start() -> ref``, ``stop()``, ``count``, and refs
with ``tell`` and ``ask``."""

MESSAGES: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]] = {
    "actorio": (lambda n: Ping(n=n), lambda n: Echo(n=n)),
    "baseline": (SlotPing, SlotEcho),
}
"""How each side builds a told and an asked message, when it builds one per send: actorio's are
validated pydantic models, the hand-written side's plain classes with ``__slots__``."""
