"""The keys of a shard's pump (``_durable_shards``): one key's state there (`ShardKey`), and the
rule for the keys whose entity cannot start (`to_move`: which of their messages go to the
dead-letter stream when the pump is full, so that they never stop the shard's other keys).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from nats.aio.msg import Msg

from ..lowlevel import Mailbox, task_of

if TYPE_CHECKING:
    from ._keeper import PublicationSupervisor
    from ._settlement import Settlement

__all__ = ["MAX_ACK_PENDING", "ShardKey", "stuck_limit", "to_move"]

MAX_ACK_PENDING = 512
"""The messages one shard's pump holds at once (fetched, not yet settled): its consumer's
``max_ack_pending``. Enough for hundreds of keys of a shard to be handled in parallel, and a
bound on the memory one shard takes (with 64 shards, 32,768 messages for a type)."""


def stuck_limit() -> int:
    """The messages that the keys of a shard whose entity cannot start may hold in its pump,
    together, once it is full: half of `MAX_ACK_PENDING`. Their newest messages beyond it are
    then moved to the dead-letter stream, so that the shard's other keys get the other half."""
    return MAX_ACK_PENDING // 2


def to_move(keys: Iterable[ShardKey], after: int) -> list[tuple[int, ShardKey]]:
    """The messages (stream sequence, key) to move out of a full pump: the keys whose entity
    cannot start (``after`` failed starts in a row) hold at most `stuck_limit` messages after
    them. Those of the keys that failed the most starts go first, each key's newest first, each
    keeping its oldest while others can go (so each key keeps a prefix of its messages)."""
    stuck = [key for key in keys if key.failed_starts >= after and key.start_error is not None]
    # A key trying a start holds its oldest message out of `waiting` (its `current`).
    trying = {id(key) for key in stuck if key.current and key.current not in key.waiting}
    excess = sum(len(key.waiting) + (id(key) in trying) for key in stuck) - stuck_limit()
    if excess <= 0:
        return []
    later = [(seq, key) for key in stuck for seq in sorted(key.waiting)[0 if id(key) in trying else 1 :]]
    oldest = [(min(key.waiting), key) for key in stuck if key.waiting and id(key) not in trying]
    chosen = sorted(later, key=_first_to_go)[:excess]
    return chosen + sorted(oldest, key=_first_to_go)[: excess - len(chosen)]


class ShardKey:
    """One key of the shard: its entity (once started), and its messages waiting in the pump."""

    __slots__ = (
        "key",
        "mailbox",
        "supervisor",
        "settlement",
        "waiting",
        "returned",
        "worker",
        "last",
        "retiring",
        "not_before",
        "failed_starts",
        "start_error",
        "current",
        "handled",
    )

    def __init__(self, key: str, now: float) -> None:
        self.key = key
        self.mailbox: Mailbox | None = None
        self.supervisor: PublicationSupervisor | None = None
        self.settlement: Settlement | None = None
        self.waiting: dict[int, Msg] = {}
        """Fetched messages of the key not yet handled, by stream sequence."""
        self.returned: dict[int, float] = {}
        """Stream sequences given back and due again (until when they are waited for): none of
        the key's later messages is handled before they come back."""
        self.worker: asyncio.Task[None] | None = None
        self.last = now
        self.retiring: asyncio.Task[None] | None = None
        """Its entity being stopped: the key starts again only once that is done (its messages
        wait meanwhile), so that two entities of the key never run at once."""
        self.not_before = 0.0
        """No message of the key is handled before this time (its entity could not start)."""
        self.failed_starts = 0
        self.current = 0
        """The stream sequence of the message its worker settles now (0: none)."""
        self.start_error: Exception | None = None
        """Why its entity's last start failed (its factory or its recovery raised); None once
        it started."""
        self.handled = 0
        """The stream sequence of the key's last message handled and acknowledged: a copy of it
        (or of an earlier one) delivered again, its acknowledgement lost, is not handled again."""

    def ready(self, now: float) -> Msg | None:
        """The key's next message, if it may be handled now (per-key stream order)."""
        if not self.waiting or now < self.not_before:
            return None
        self.expire(now)
        seq = min(self.waiting)
        if self.returned and seq > min(self.returned):
            return None
        self.returned.pop(seq, None)
        return self.waiting.pop(seq)

    def expire(self, now: float) -> None:
        """Stop waiting for the messages given back that are overdue (taken out of the stream by
        someone else: they never come back)."""
        for seq in [seq for seq, until in self.returned.items() if until <= now]:
            del self.returned[seq]

    def alive(self) -> bool:
        """Its entity runs, or restarts under its supervision (not stopped for good)."""
        if self.mailbox is None or self.mailbox.closed:
            return False
        task = task_of(self.supervisor) if self.supervisor is not None else None
        return task is None or not task.done()


def _first_to_go(entry: tuple[int, ShardKey]) -> tuple[int, int]:
    """The order in which `to_move` moves messages: most failed starts, then newest."""
    seq, state = entry
    return -state.failed_starts, -seq
