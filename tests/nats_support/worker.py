"""A worker process: ``python -m tests.nats_support.worker --url URL --mode MODE ...``.

It publishes one actor, prints ``ready`` once the publication is live, and runs until its standard
input closes (or it is killed).

- ``greeter``: a `Greeter`, under ``--name`` and, if given, ``--also`` (a name of its own).
- ``recorder``: a durable `Recorder` under ``--name``, writing to ``--record``; ``--poison``
  (once or more) makes a job fail, ``--max-deliver`` and ``--retry`` (the first retry delay) set the pool's
  redelivery of failed messages.

``--debug-errors`` connects the node with ``debug_errors=True`` (error replies carry tracebacks).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from actorio import Backoff
from actorio.nats import Durable, Node

from .actors import Greeter, Recorder


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["greeter", "recorder"], required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--also")
    parser.add_argument("--record", type=Path)
    parser.add_argument("--hang-at", type=int)
    parser.add_argument("--redelivery", type=float, default=1.0)
    parser.add_argument("--debug-errors", action="store_true")
    parser.add_argument("--poison", type=int, action="append", default=[])
    parser.add_argument("--max-deliver", type=int, default=5)
    parser.add_argument("--retry", type=float, default=1.0)
    args = parser.parse_args(argv)
    node = await Node.connect(args.url, reconnect_wait=0.1, debug_errors=args.debug_errors)
    if args.mode == "greeter":
        greeter = Greeter()
        await node.publish(args.name, greeter)
        if args.also:
            await node.publish(args.also, greeter)
    else:
        recorder = Recorder(args.record, args.hang_at, args.poison)
        durable = Durable(
            redelivery_delay=args.redelivery,
            prefetch=8,
            max_deliver=args.max_deliver,
            retry_backoff=Backoff(min_delay=args.retry, max_delay=4 * args.retry),
        )
        await node.publish(args.name, recorder, durable=durable)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
    await node.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
