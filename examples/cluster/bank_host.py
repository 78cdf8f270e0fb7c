"""A host process: hosts the `Account` entity type until its stdin closes.

python bank_host.py nats://127.0.0.1:4222
"""

from __future__ import annotations

import asyncio
import os
import sys

from bank_accounts import Account

from actorio.nats import Node

LEASE = 3.0  # seconds: how long a dead host's accounts wait before they move


async def main(url: str) -> None:
    async with await Node.connect(url) as node:
        await node.host(Account, lease=LEASE)
        print("ready", os.getpid(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
