"""What the persistence tests share: the example account (examples/persistent_account.py), and
journals that let a test hold or break an append."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from actorio.persistence import EventData, InMemoryJournal, PersistenceId

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from persistent_account import (  # noqa: E402
    Account,
    Balance,
    Deposit,
    Deposited,
    GetBalance,
    InsufficientFunds,
    Withdraw,
    Withdrawn,
)

__all__ = [
    "ROOT",
    "Account",
    "Balance",
    "Deposit",
    "Deposited",
    "GetBalance",
    "HeldJournal",
    "InsufficientFunds",
    "Withdraw",
    "Withdrawn",
]


class HeldJournal(InMemoryJournal):
    """An in-memory journal whose appends and state saves wait for `release` (set)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.appends = 0

    async def append(
        self, persistence_id: PersistenceId, expected_sequence: int, events: Sequence[EventData]
    ) -> int:
        self.appends += 1
        self.waiting.set()
        await self.release.wait()
        return await super().append(persistence_id, expected_sequence, events)

    async def save_state(
        self, persistence_id: PersistenceId, expected_revision: int, version: int, payload: bytes
    ) -> int:
        self.waiting.set()
        await self.release.wait()
        return await super().save_state(persistence_id, expected_revision, version, payload)
