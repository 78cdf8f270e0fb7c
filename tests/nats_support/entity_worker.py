"""An entity host process: ``python -m tests.nats_support.entity_worker --url URL --record FILE``.

It hosts `Bank` (type name ``bank``, or ``--name``) with ``--lease`` and ``--idle`` seconds,
durably with ``--durable`` (a JetStream mailbox, retries 0.05 s apart), records its
activations to ``--record``, prints ``ready <node id>``, and runs until its standard input
closes (or it is killed, or paused).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from actorio import Backoff
from actorio.nats import Durable, Node

from .entities import Bank


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--idle", type=float, default=300.0)
    parser.add_argument("--name", default="bank")
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args(argv)
    node = await Node.connect(args.url, reconnect_wait=0.1)
    with args.record.open("a", buffering=1) as record:  # a line at a time: kill -9 loses none
        bank = type("Bank", (Bank,), {"node_id": node.node_id, "record": record})
        durable = Durable(retry_backoff=Backoff(min_delay=0.05, max_delay=0.2)) if args.durable else False
        await node.host(bank, name=args.name, lease=args.lease, idle_timeout=args.idle, durable=durable)
        print("ready", node.node_id, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
        await node.close()


if __name__ == "__main__":
    # Not in asyncio's debug mode (inherited from the test run): hosts are what a soak loads.
    asyncio.run(main(sys.argv[1:]), debug=False)
