"""Dies (``os._exit``, as abruptly as ``kill -9``) in the middle of a persist of three events:
as SQLite is about to run the statement named on the command line (the second event's insert, or
the commit), the first event already written in the open transaction.

    python crash_mid_persist.py JOURNAL.sqlite3 (second-insert | commit)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from actorio.persistence import SqliteJournal
from tests.persistence.programs.account_writer import BatchAccount, DepositMany

real_connect = sqlite3.connect


def connect_then_die_at(where: str) -> Any:
    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        inserts = 0

        def trace(statement: str) -> None:
            nonlocal inserts
            if statement.startswith("INSERT INTO events"):
                inserts += 1
                if where == "second-insert" and inserts == 2:
                    print("dying before the second insert", flush=True)
                    os._exit(9)
            if statement == "COMMIT" and inserts and where == "commit":
                print("dying before the commit", flush=True)
                os._exit(9)

        connection.set_trace_callback(trace)
        return connection

    return connect


async def main(path: str, where: str) -> None:
    async with SqliteJournal(path) as journal, BatchAccount("alice", journal) as account:
        await account.ask(DepositMany(memo="before", count=3))
        print("first persist acknowledged", flush=True)
        sqlite3.connect = connect_then_die_at(where)
        # A second journal on the same file, whose connection is the one that dies.
        async with SqliteJournal(path) as dying, BatchAccount("alice", dying) as doomed:
            await doomed.ask(DepositMany(memo="doomed", count=3))
    print("not reached", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
