"""The entity type the failover tests host in worker processes: a bank account that records, to a
file, when each activation starts and stops and which deposits it handled."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import TextIO

from actorio import Actor, Message, handles


class Deposit(Message):
    """Told: ``amount`` is added; ``seq`` is the sender's sequence number for this key."""

    amount: int
    seq: int


class Balance(Message[int]):
    """Asked: the balance."""


class Where(Message[str]):
    """Asked: the node id of the process the account is active in."""


class Bank(Actor[Deposit | Balance | Where]):
    """An account by key. ``node_id`` and ``record`` are set by the hosting process."""

    node_id = ""
    record: TextIO | None = None

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.balance = 0

    def _write(self, *fields: object) -> None:
        if self.record is not None:
            self.record.write(" ".join(str(f) for f in (*fields, time.time())) + "\n")

    async def mainloop_setup(self) -> None:
        self._write("start", self.key, self.node_id)

    async def mainloop_teardown(self) -> None:
        self._write("stop", self.key, self.node_id)

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        self.balance += msg.amount
        self._write("handle", self.key, self.node_id, msg.seq)

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        self._write("handle", self.key, self.node_id, -1)
        return self.balance

    @handles(Where)
    async def where(self, msg: Where) -> str:
        self._write("handle", self.key, self.node_id, -1)
        return self.node_id


def records(path: Path) -> list[tuple[str, str, str, int, float]]:
    """The lines of a record file: (kind, key, node, seq or -1, time)."""
    lines: list[tuple[str, str, str, int, float]] = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 4:
            lines.append((fields[0], fields[1], fields[2], -1, float(fields[3])))
        elif len(fields) == 5:
            lines.append((fields[0], fields[1], fields[2], int(fields[3]), float(fields[4])))
    return lines


def check_one_activation_at_a_time(
    lines: list[tuple[str, str, str, int, float]], ended: dict[str, float]
) -> dict[str, list[tuple[str, float, float]]]:
    """Each key's activations as (node, first record, last record), checked not to overlap in
    time. An activation's span runs from its start to its stop; one that never stopped (its
    process was killed, at ``ended[node]``, or the run ended) to its last handled message. A
    fenced activation whose process was paused stops late, but handles nothing after its last
    message before the pause: its span is its start to its last handled message."""
    spans: dict[tuple[str, str, float], list[float]] = {}
    current: dict[tuple[str, str], tuple[str, str, float]] = {}
    for kind, key, node, _, at in sorted(lines, key=lambda line: line[4]):
        if kind == "start":
            ident = (key, node, at)
            current[(key, node)] = ident
            spans[ident] = [at, at]
        elif (key, node) in current:
            ident = current[(key, node)]
            if kind == "handle":
                spans[ident][1] = at
            else:
                del current[(key, node)]
    by_key: dict[str, list[tuple[str, float, float]]] = {}
    for (key, node, _), (first, last) in spans.items():
        by_key.setdefault(key, []).append((node, first, min(last, ended.get(node, last))))
    for key, activations in by_key.items():
        activations.sort(key=lambda a: a[1])
        for before, after in itertools.pairwise(activations):
            assert before[2] <= after[1], f"{key}: two live activations: {before} and {after}"
    return by_key
