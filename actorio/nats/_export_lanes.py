"""Delivery to a node's exported actors (those whose address travelled as a sender) without
head-of-line blocking: one subscription serves all of them, so the full bounded mailbox of one
must not hold up what arrives for the others.

An actor with an unbounded mailbox never waits for room: what arrives for it is delivered at
once. An actor with a bounded mailbox gets a `_Lane`: what arrives for it waits there, in order of
arrival, and one task of the node delivers it, waiting for room as `ActorRef.tell` does (so a
batch of tells to an idle actor is not cut to its capacity). A lane holds at most
`LANE_MESSAGES` NATS messages and `LANE_BYTES` bytes (payloads and headers); what comes beyond
is dropped as when a subscription's pending limits are full (`Receiver.overflow`: dead letters
``overflow``, an ask answered `MailboxFull`). The lane, and its task, end when it is empty.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nats.aio.msg import Msg

from .. import Actor, dead_letters
from ..lowlevel import Mailbox, mailbox_of
from ._publication import Receiver, Spawn

__all__ = ["LANE_BYTES", "LANE_MESSAGES", "ExportLanes"]

LANE_MESSAGES = 10_000
"""The NATS messages (a batch of tells is one) a lane holds at most."""
LANE_BYTES = 16 * 1024 * 1024
"""The bytes (payloads and headers) a lane holds at most."""


class _Lane:
    __slots__ = ("queue", "size")

    def __init__(self) -> None:
        self.queue: deque[tuple[Msg, int]] = deque()
        self.size = 0


class ExportLanes:
    """How a node's sender-address subscription delivers (`deliver`): see the module's text."""

    def __init__(self, receiver: Receiver, spawn: Spawn) -> None:
        self._receiver = receiver
        self._spawn = spawn
        self._lanes: dict[Mailbox, _Lane] = {}

    async def deliver(self, actor: Actor[Any], msg: Msg) -> None:
        """Deliver ``msg`` to ``actor`` now (an unbounded mailbox), or through its lane."""
        mailbox = mailbox_of(actor)
        if mailbox is None or mailbox.putters is None:  # unbounded: a tell never waits
            await self._receiver.receive(actor, msg)
            return
        lane = self._lanes.get(mailbox)
        if lane is None:
            lane = self._lanes[mailbox] = _Lane()
            self._spawn(self._drain(mailbox, lane))
        headers = msg.headers
        size = len(msg.data) + (sum(len(k) + len(v) for k, v in headers.items()) if headers else 0)
        if len(lane.queue) >= LANE_MESSAGES or lane.size + size > LANE_BYTES:
            await self._receiver.overflow(actor, msg)
            return
        lane.queue.append((msg, size))
        lane.size += size

    async def _drain(self, mailbox: Mailbox, lane: _Lane) -> None:
        """Deliver the lane's messages in order, each to the incarnation reading the mailbox then
        (a message for an actor stopped for good meets its closed mailbox: a dead letter, or
        `ActorStopped` for an ask). Cancelled (the node closing): what is left is dead letters."""
        try:
            while lane.queue:
                msg, size = lane.queue.popleft()
                lane.size -= size
                await self._receiver.receive(mailbox.actor, msg)
        finally:
            if self._lanes.get(mailbox) is lane:
                del self._lanes[mailbox]
            for msg, _ in lane.queue:
                dead_letters.record(msg.data, mailbox.identifier, "stopped")
            lane.queue.clear()
