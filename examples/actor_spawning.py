"""Actor spawning: a manager starts one worker per request and hands the request on to it.

The worker's handler returns the result, which answers the original ``ask``: the manager never
sees the reply, and each asker gets its own result.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from actorio import Actor, Message, NoReply, ask, handles

Operation = Callable[[], Awaitable[int]]
"""A blocking operation (I/O, a long computation) that a worker runs for one request."""


async def blocking_operation() -> int:
    """For the sake of this example, the blocking operation is a short random sleep."""
    tenths = random.randint(0, 10)
    await asyncio.sleep(tenths / 10)
    return tenths


class Result(Message):
    """The result of a computation."""

    value: int


class Compute(Message[Result]):
    """A request to do some computation or blocking call; asking with it returns a `Result`."""


class Worker(Actor[Compute]):
    """Runs the operation for one request, answers it, then stops."""

    def __init__(self, operation: Operation) -> None:
        super().__init__()
        self.operation = operation

    @handles(Compute)
    async def compute(self, msg: Compute) -> Result:
        value = await self.operation()
        # This worker deals with one request only: it stops once this handler has returned.
        await self.stop()
        return Result(value=value)


class Manager(Actor[Compute]):
    """Spawns a `Worker` child per request, so that requests run concurrently."""

    def __init__(self, operation: Operation = blocking_operation) -> None:
        super().__init__()
        self.operation = operation

    @handles(Compute)
    async def spawn_worker(self, msg: Compute) -> NoReply:
        worker = await self.register_child(Worker(self.operation))
        # Handing the request on: the worker's reply answers the asker, not this handler.
        return await worker.forward(msg)


async def main(operation: Operation = blocking_operation, requests: int = 10) -> list[int]:
    """Ask ``requests`` computations at once; print each result as it comes, and return them."""
    results: list[int] = []
    async with Manager(operation) as manager:
        for next_result in asyncio.as_completed([ask(manager, Compute()) for _ in range(requests)]):
            result = await next_result
            print(f"Got a response with result {result.value}")
            results.append(result.value)
    return results


if __name__ == "__main__":
    asyncio.run(main())
