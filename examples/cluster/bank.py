"""Bank accounts as entities across three processes: ``python examples/cluster/bank.py [NATS URL]``.

Starts three host processes (``bank_host.py``), deposits into 30 accounts (each activated on its
first deposit, on one of the hosts; each deposit durable in a JetStream journal before the
account's next message), kills the host holding the most accounts with ``kill -9``, and asks
every account again: the dead host's accounts are activated on the others once their leases
expire, and recover their balances from the journal; the others kept theirs. Without a URL, it
starts a local ``nats-server`` (JetStream on) first, and stops it at the end. Run again on the
same server, the accounts carry on from the balances they had.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path

from bank_accounts import Account, Balance, Deposit, Host
from bank_host import LEASE

from actorio.nats import LocalServer, Node

HERE = Path(__file__).resolve().parent
HOSTS = 3
ACCOUNTS = 30


@contextlib.contextmanager
def nats_server(url: str | None) -> Generator[str, None, None]:
    if url is not None:
        yield url
        return
    with LocalServer() as server:
        yield server.url


@contextlib.asynccontextmanager
async def host(url: str) -> AsyncGenerator[int, None]:
    """A host process; yields its pid once it hosts accounts."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "bank_host.py"),
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line.startswith(b"ready "):
            raise RuntimeError("a host did not start")
        yield process.pid
    finally:
        if process.returncode is None and process.stdin is not None:
            process.stdin.close()  # the host passivates its accounts and exits
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def until_hosts(node: Node, count: int) -> None:
    """Wait (up to 10 s) until ``count`` hosts of accounts have announced themselves."""
    await node.entities.wait_for_hosts("Account", 10.0)
    deadline = time.monotonic() + 10.0
    while len(node.entities.hosts.live("Account")) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # announcements come every second: a short poll is enough


async def main(url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        pids = [await stack.enter_async_context(host(url)) for _ in range(HOSTS)]
        async with await Node.connect(url) as node:
            await until_hosts(node, HOSTS)
            accounts = [node.entity(Account, f"account-{n}") for n in range(ACCOUNTS)]
            for n, account in enumerate(accounts):
                await account.tell(Deposit(amount=100 + n))
            where = await asyncio.gather(*(account.ask(Host()) for account in accounts))
            before = await asyncio.gather(*(account.ask(Balance()) for account in accounts))
            print(f"{ACCOUNTS} accounts on {len(set(where))} host processes of {HOSTS}")
            victim, held = collections.Counter(where).most_common(1)[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            print(f"killed host {pids.index(victim) + 1} (kill -9), which held {held} accounts")
            balances = await asyncio.gather(
                *(account.ask(Balance(), timeout=LEASE + 10) for account in accounts)
            )
            waited = time.monotonic() - killed
            moved = [n for n, pid in enumerate(where) if pid == victim]
            kept = [n for n in range(ACCOUNTS) if n not in moved]
            assert all(before[n] >= 100 + n for n in range(ACCOUNTS))
            assert balances == before  # the moved accounts recovered theirs from the journal
            print(f"all {ACCOUNTS} accounts answered again within {waited:.1f} s (lease {LEASE} s)")
            print(f"{len(moved)} moved to the other hosts with their balances, {len(kept)} stayed")


if __name__ == "__main__":
    with nats_server(sys.argv[1] if len(sys.argv) > 1 else None) as server_url:
        asyncio.run(main(server_url))
