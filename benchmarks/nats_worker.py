"""A worker process of the NATS scale-out row: ``python -m benchmarks.nats_worker URL NAME``.

It publishes one `Burner` under ``NAME`` (every worker publishing a name is in its pool: each
message goes to one of them), prints ``ready``, and serves until its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys

from actorio import Actor, Message, handles
from actorio.nats import Node

WORK = 30_000
"""Loop turns of CPU work per message: about 1 ms, so that the handlers, not the client, are
what a second worker shares."""


class Burn(Message[int]):
    """Asks for ``WORK`` turns of CPU work; answered with the turns done."""

    n: int


class Burner(Actor[Burn]):
    @handles(Burn)
    async def burn(self, msg: Burn) -> int:
        total = 0
        for turn in range(WORK):
            total += turn
        return WORK if total else 0


async def main(url: str, name: str) -> None:
    async with await Node.connect(url, reconnect_wait=0.1) as node:
        burner = Burner()
        try:
            await node.publish(name, burner)
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        finally:
            await burner.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
