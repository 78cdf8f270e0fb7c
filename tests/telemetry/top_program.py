"""A running system for the test of ``python -m actorio top``: a tree of actors under load (a
periodic timer feeds a worker pool), its snapshot endpoint on a free port. Prints the endpoint's
URL, then runs until it is terminated.

``python tests/telemetry/top_program.py NAME [NATS_URL]``: NAME is the root actor's identifier;
with NATS_URL, the process also publishes the root as NAME on that server and answers as a NATS
service (``Node.serve_as_service``).
"""

from __future__ import annotations

import asyncio
import sys

from actorio import Actor, ActorRef, Message, handles
from actorio.telemetry import serve_snapshots


class Job(Message):
    n: int


class Tick(Message):
    pass


class Worker(Actor[Job]):
    @handles(Job)
    async def job(self, message: Job) -> None:
        await asyncio.sleep(0.001)


class Dispatcher(Actor[Tick]):
    workers: list[ActorRef[Job]]

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.workers = [await self.supervise(Worker, name=f"worker-{n}") for n in range(2)]
        self.sent = 0
        self.start_periodic_timer("tick", Tick(), 0.01)

    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        for worker in self.workers:
            self.sent += 1
            await worker.tell(Job(n=self.sent))


async def main(name: str, nats_url: str | None) -> None:
    async with Dispatcher(identifier=name) as ref:
        from actorio.lowlevel import actor_of

        root = actor_of(ref)
        assert root is not None
        server = await serve_snapshots(root)
        node = None
        if nats_url is not None:
            from actorio.nats import Node

            node = await Node.connect(nats_url)
            await node.publish(name, ref)
            await node.serve_as_service()
        print(server.url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            if node is not None:
                await node.close()
            await server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
