"""A worker process of the pool: publishes a `Squarer` as ``squares`` until its stdin closes.

python squares_worker.py nats://127.0.0.1:4222
"""

from __future__ import annotations

import asyncio
import os
import sys

from squares_protocol import Square, Squared

from actorio import Actor, handles
from actorio.nats import Node


class Squarer(Actor[Square]):
    @handles(Square)
    async def square(self, msg: Square) -> Squared:
        return Squared(value=msg.n * msg.n, worker=os.getpid())


async def main(url: str) -> None:
    async with await Node.connect(url) as node:
        await node.publish("squares", Squarer())  # every worker joins the same queue group
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
