"""A host process: hosts the `Account` entity type, persistent in JetStream on the same server,
until its stdin closes.

python bank_host.py nats://127.0.0.1:4222
"""

from __future__ import annotations

import asyncio
import os
import sys

from bank_accounts import Account

from actorio.nats import Node
from actorio.persistence import JetStreamJournal

LEASE = 3.0  # seconds: how long a dead host's accounts wait before they move


async def main(url: str) -> None:
    async with await JetStreamJournal.connect(url) as journal, await Node.connect(url) as node:
        await node.host(Account, lease=LEASE, journal=journal)
        print("ready", os.getpid(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
