"""Promise 3, the mainloop: one message at a time, FIFO per sender, and input tasks
(`register_input_task`) whose handlers run in the actor, never while a message is being handled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorio import Actor, ActorRef, Message, handles


class Step(Message):
    n: int


class Item(Message):
    sender_tag: str
    n: int


class Probe(Message[list[str]]):
    pass


class Ping(Message[int]):
    n: int = 0


class Boom(Exception):
    pass


async def bounded(awaitable: Any) -> Any:
    """Every wait that could hang has a bound."""
    return await asyncio.wait_for(awaitable, timeout=2)


async def wait_task_done(task: asyncio.Future[Any]) -> None:
    """Wait (bounded) until ``task`` is done, without raising its error; its earlier done callbacks
    (the actor's) have run by the time this returns."""
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done


def _current() -> asyncio.Future[Any]:
    """The task running the caller (inside an input factory: the input task itself)."""
    task = asyncio.current_task()
    assert task is not None
    return task


class Echo(Actor):
    """A helper whose asks give the event loop several turns: a barrier that is not a sleep."""

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return msg.n


async def loop_turns(echo: ActorRef[Any]) -> None:
    for n in range(3):
        assert await bounded(echo.ask(Ping(n=n))) == n


# -- one message at a time --------------------------------------------------------------------


class Serial(Actor):
    def __init__(self, entered: list[asyncio.Event], gates: list[asyncio.Event]) -> None:
        super().__init__()
        self.entered = entered
        self.gates = gates
        self.n_started = 0
        self.finished = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[str] = []

    @handles(Step)
    async def step(self, msg: Step) -> None:
        self.n_started += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.log.append(f"start-{msg.n}")
        self.entered[msg.n].set()
        await self.gates[msg.n].wait()
        self.log.append(f"end-{msg.n}")
        self.in_flight -= 1
        self.finished += 1

    @handles(Probe)
    async def probe(self, msg: Probe) -> list[str]:
        return list(self.log)


@pytest.mark.asyncio
async def test_a_second_message_waits_until_the_first_handler_finishes() -> None:
    """Promise 3: one message at a time: while a handler is parked, the next message is not handled."""
    entered = [asyncio.Event() for _ in range(3)]
    gates = [asyncio.Event() for _ in range(3)]
    actor = Serial(entered, gates)
    async with Echo() as echo, actor as ref:
        for n in range(3):
            await ref.tell(Step(n=n))
        await bounded(entered[0].wait())
        await loop_turns(echo)
        assert (actor.n_started, actor.finished) == (1, 0)

        gates[0].set()
        await bounded(entered[1].wait())
        await loop_turns(echo)
        assert (actor.n_started, actor.finished) == (2, 1)

        gates[1].set()
        gates[2].set()
        log = await bounded(ref.ask(Probe()))
    assert log == ["start-0", "end-0", "start-1", "end-1", "start-2", "end-2"]
    assert actor.max_in_flight == 1


@pytest.mark.asyncio
async def test_an_ask_waits_behind_a_parked_handler() -> None:
    """Promise 3: an ask queued behind a parked handler is served only after that handler ends."""
    entered = [asyncio.Event()]
    gates = [asyncio.Event()]
    actor = Serial(entered, gates)
    async with Echo() as echo, actor as ref:
        await ref.tell(Step(n=0))
        await bounded(entered[0].wait())
        probe = asyncio.ensure_future(ref.ask(Probe()))
        await loop_turns(echo)
        assert not probe.done()
        gates[0].set()
        assert await bounded(probe) == ["start-0", "end-0"]


# -- FIFO -------------------------------------------------------------------------------------


class Recorder(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    @handles(Item)
    async def item(self, msg: Item) -> None:
        self.seen.append((msg.sender_tag, msg.n))

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        return len(self.seen)


@pytest.mark.asyncio
async def test_thousand_tells_arrive_in_order() -> None:
    """Promise 3: FIFO per sender: 1000 tells (tell and tell_nowait mixed) are handled in order."""
    actor = Recorder()
    async with actor as ref:
        for n in range(1000):
            if n % 2:
                ref.tell_nowait(Item(sender_tag="a", n=n))
            else:
                await ref.tell(Item(sender_tag="a", n=n))
        assert await bounded(ref.ask(Ping())) == 1000
    assert [n for _, n in actor.seen] == list(range(1000))


@pytest.mark.asyncio
async def test_tells_before_start_are_handled_in_order_once_started() -> None:
    """Promise 3: messages told before start are queued and handled, in order, once it runs."""
    actor = Recorder()
    for n in range(50):
        actor.reference.tell_nowait(Item(sender_tag="early", n=n))
    async with actor as ref:
        assert await bounded(ref.ask(Ping())) == 50
    assert [n for _, n in actor.seen] == list(range(50))


@pytest.mark.asyncio
async def test_fifo_holds_per_sender_with_interleaved_senders() -> None:
    """Promise 3: with three senders interleaving, each sender's messages keep their order."""
    actor = Recorder()

    async def produce(tag: str, ref: Any) -> None:
        for n in range(300):
            await ref.tell(Item(sender_tag=tag, n=n))
            if n % 7 == 0:
                await bounded(ref.ask(Ping()))

    async with actor as ref:
        await bounded(asyncio.gather(*(produce(tag, ref) for tag in "xyz")))
        assert await bounded(ref.ask(Ping())) == 900
    for tag in "xyz":
        assert [n for t, n in actor.seen if t == tag] == list(range(300))


# -- input tasks ------------------------------------------------------------------------------


class Hold(Message):
    pass


class WithInput(Actor):
    """Parks on ``release`` while handling Hold; its input handler appends to the same log."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.input_tasks: list[asyncio.Future[Any]] = []
        self.handler_tasks: list[asyncio.Task[Any] | None] = []

    @handles(Hold)
    async def hold(self, msg: Hold) -> None:
        self.log.append("hold-start")
        self.entered.set()
        await self.release.wait()
        self.log.append("hold-end")

    @handles(Probe)
    async def probe(self, msg: Probe) -> list[str]:
        return list(self.log)


@pytest.mark.asyncio
async def test_input_handler_never_runs_while_a_message_is_handled() -> None:
    """Promise 3: an input task completing while a handler is parked has its handler run only
    after the message handler is released."""
    actor = WithInput()
    go: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def produce() -> str:
        actor.input_tasks.append(_current())
        return await go

    async def on_input(task: asyncio.Task[Any]) -> None:
        actor.log.append("input:" + task.result())

    actor.register_input_task(produce, on_input, count=1)
    async with Echo() as echo, actor as ref:
        await ref.tell(Hold())
        await bounded(actor.entered.wait())
        go.set_result("x")
        await wait_task_done(actor.input_tasks[0])
        await loop_turns(echo)
        assert actor.log == ["hold-start"]

        actor.release.set()
        assert await bounded(ref.ask(Probe())) == ["hold-start", "hold-end", "input:x"]


@pytest.mark.asyncio
async def test_input_handler_runs_in_the_actor_task() -> None:
    """Promise 3: the input handler runs in the actor's own task."""
    actor = WithInput()
    ran = asyncio.Event()

    async def produce() -> str:
        return "v"

    async def on_input(task: asyncio.Task[Any]) -> None:
        actor.handler_tasks.append(asyncio.current_task())
        ran.set()

    actor.register_input_task(produce, on_input, count=1)
    async with actor:
        await bounded(ran.wait())
        assert actor.handler_tasks == [actor._actor_task]


@pytest.mark.asyncio
async def test_input_task_with_count_runs_that_many_times() -> None:
    """Promise 3: count=N runs the factory, and the handler, N times and no more."""
    actor = WithInput()
    calls: list[int] = []
    results: list[int] = []
    third = asyncio.Event()

    async def produce() -> int:
        calls.append(len(calls))
        return calls[-1]

    async def on_input(task: asyncio.Task[Any]) -> None:
        results.append(task.result())
        if len(results) == 3:
            third.set()

    actor.register_input_task(produce, on_input, count=3)
    async with Echo() as echo, actor as ref:
        await bounded(third.wait())
        await loop_turns(echo)
        await bounded(ref.ask(Probe()))
        assert calls == [0, 1, 2]
        assert results == [0, 1, 2]


@pytest.mark.asyncio
async def test_input_task_without_count_runs_again_until_the_actor_stops() -> None:
    """Promise 3: count=None runs the factory again after each handler."""
    actor = WithInput()
    results: list[int] = []
    enough = asyncio.Event()

    async def produce() -> int:
        return len(results)

    async def on_input(task: asyncio.Task[Any]) -> None:
        results.append(task.result())
        if len(results) == 10:
            enough.set()

    actor.register_input_task(produce, on_input)
    async with actor:
        await bounded(enough.wait())
    assert results[:10] == list(range(10))


@pytest.mark.asyncio
async def test_input_task_registered_after_start_runs() -> None:
    """Promise 3: an input task registered on a running actor starts at once."""
    actor = WithInput()
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def produce() -> str:
        return "late"

    async def on_input(task: asyncio.Task[Any]) -> None:
        got.set_result((task.result(), asyncio.current_task()))

    async with actor:
        actor.register_input_task(produce, on_input, count=1)
        value, task = await bounded(got)
    assert value == "late"
    assert task is actor._actor_task


@pytest.mark.asyncio
async def test_input_handler_receives_the_factory_failure_in_the_task() -> None:
    """Promise 3: the handler gets the done task; a failing factory is seen as task.exception()."""
    actor = WithInput()
    got: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def produce() -> str:
        raise Boom("factory")

    async def on_input(task: asyncio.Task[Any]) -> None:
        got.set_result(task.exception())

    actor.register_input_task(produce, on_input, count=1)
    async with actor:
        error = await bounded(got)
    assert isinstance(error, Boom)


def test_input_task_count_must_be_positive() -> None:
    """Promise 3: count=0 is refused."""

    async def produce() -> None:
        return None

    async def on_input(task: asyncio.Task[Any]) -> None:
        return None

    with pytest.raises(ValueError, match="count"):
        WithInput().register_input_task(produce, on_input, count=0)


@pytest.mark.asyncio
async def test_input_tasks_are_cancelled_when_the_actor_stops() -> None:
    """Promise 3: an input task still running when the actor stops is cancelled; its handler never runs."""
    actor = WithInput()
    started = asyncio.Event()
    cancelled = asyncio.Event()
    tasks: list[asyncio.Future[Any]] = []
    handled: list[str] = []

    async def produce() -> None:
        tasks.append(_current())
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def on_input(task: asyncio.Task[Any]) -> None:
        handled.append("ran")

    actor.register_input_task(produce, on_input)
    await actor.start()
    await bounded(started.wait())
    await bounded(actor.stop())
    assert cancelled.is_set()
    assert tasks[0].cancelled()
    assert handled == []
    await bounded(actor.wait())


@pytest.mark.asyncio
async def test_exception_in_input_handler_stops_the_actor_with_that_error() -> None:
    """Promise 3: an input handler that raises stops the actor; ``await actor`` raises that error."""
    actor = WithInput()

    async def produce() -> int:
        return 7

    async def on_input(task: asyncio.Task[Any]) -> None:
        raise Boom(f"input {task.result()}")

    actor.register_input_task(produce, on_input)
    await actor.start()
    with pytest.raises(Boom, match="input 7"):
        await bounded(actor.wait())
    assert actor.stopped
    assert not actor.running
