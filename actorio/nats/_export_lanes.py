"""Delivery to a node's exported actors (those whose address travelled as a sender) without
head-of-line blocking: one subscription serves all of them, so the full bounded mailbox of one
must not hold up what arrives for the others.

An actor with an unbounded mailbox never waits for room: what arrives for it is delivered at
once. An actor with a bounded mailbox gets a `_Lane`: what arrives for it waits there, in order of
arrival, and one task of the node delivers it, waiting for room as `ActorRef.tell` does (so a
batch of tells to an idle actor is not cut to its capacity). A lane holds at most
`LANE_MESSAGES` NATS messages and `LANE_BYTES` bytes, and all the lanes of a node together at
most `NODE_BYTES` (what a message costs: its payload, subject, reply subject and headers, and
`MESSAGE_COST` more for its objects, `HEADER_COST` more for each header); what comes beyond is
dropped as when a subscription's pending limits are full (`Receiver.overflow`: dead letters
``overflow``, an ask answered `MailboxFull`). The lane, and its task, end when it is empty. When
the node closes, what its lanes still hold (and the message a delivery was waiting to queue) is
dead letters ``stopped``, one for each tell of a batch.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nats.aio.msg import Msg

from .. import Actor, dead_letters
from ..lowlevel import Mailbox, mailbox_of
from ._batch import BATCH, tells_of
from ._connection import HEADER_COST, beyond_payload
from ._publication import Receiver, Spawn

__all__ = ["HEADER_COST", "LANE_BYTES", "LANE_MESSAGES", "MESSAGE_COST", "NODE_BYTES", "ExportLanes"]

LANE_MESSAGES = 10_000
"""The NATS messages (a batch of tells is one) a lane holds at most."""
LANE_BYTES = 16 * 1024 * 1024
"""The bytes a lane holds at most."""
NODE_BYTES = 64 * 1024 * 1024
"""The bytes all the lanes of a node hold at most (half of what nats-py lets one subscription
hold: the limit that applied to these messages when the subscription waited for room)."""
MESSAGE_COST = 400
"""What a message held costs beyond its bytes (the nats-py message and the lane's entry)."""


class _Lane:
    __slots__ = ("current", "queue", "size")

    def __init__(self) -> None:
        self.queue: deque[tuple[Msg, int]] = deque()
        self.size = 0
        self.current: Msg | None = None
        """The message being delivered (out of the queue, not yet in the mailbox)."""


def _cost(msg: Msg) -> int:
    return MESSAGE_COST + len(msg.data) + beyond_payload(msg)


class ExportLanes:
    """How a node's sender-address subscription delivers (`deliver`): see the module's text."""

    def __init__(self, receiver: Receiver, spawn: Spawn) -> None:
        self._receiver = receiver
        self._spawn = spawn
        self._lanes: dict[Mailbox, _Lane] = {}
        self._size = 0
        """The bytes all the lanes hold (see `_cost`)."""

    async def deliver(self, actor: Actor[Any], msg: Msg) -> None:
        """Deliver ``msg`` to ``actor`` now (an unbounded mailbox), or through its lane."""
        mailbox = mailbox_of(actor)
        if mailbox is None or mailbox.putters is None:  # unbounded: a tell never waits
            await self._receiver.receive(actor, msg)
            return
        try:
            size = _cost(msg)
        except TypeError:  # a message that cannot be counted (`beyond_payload`): dropped
            size = NODE_BYTES + 1
        lane = self._lanes.get(mailbox)
        held = (0, 0) if lane is None else (len(lane.queue), lane.size)
        if held[0] >= LANE_MESSAGES or held[1] + size > LANE_BYTES or self._size + size > NODE_BYTES:
            await self._receiver.overflow(actor, msg)
            return
        fresh = lane is None
        if lane is None:
            lane = self._lanes[mailbox] = _Lane()
        lane.queue.append((msg, size))
        lane.size += size
        self._size += size
        if fresh:  # after the message is in: an eager task factory runs the delivery at once
            self._spawn(self._drain(mailbox, lane))

    async def _drain(self, mailbox: Mailbox, lane: _Lane) -> None:
        """Deliver the lane's messages in order, each to the incarnation reading the mailbox then
        (a message for an actor stopped for good meets its closed mailbox: a dead letter, or
        `ActorStopped` for an ask). Cancelled (the node closing): what is left is dead letters."""
        try:
            while lane.queue:
                lane.current, size = lane.queue.popleft()
                lane.size -= size
                self._size -= size
                await self._receiver.receive(mailbox.actor, lane.current)
                lane.current = None
        finally:
            self._drop(mailbox, lane)

    def _drop(self, mailbox: Mailbox, lane: _Lane) -> None:
        """End ``lane``: what it holds (the message being delivered, cancelled while it waited
        for room, included) is dead letters."""
        if self._lanes.get(mailbox) is lane:
            del self._lanes[mailbox]
        held = [msg for msg, _ in lane.queue]
        current, lane.current = lane.current, None
        if current is not None and not (current.headers and BATCH in current.headers):
            held.insert(0, current)  # (a batch's pieces not told yet: the Receiver records them)
        for msg in held:
            for data in tells_of(msg.data, msg.headers):  # each tell of a batch
                dead_letters.record(data, mailbox.identifier, "stopped")
        self._size -= lane.size
        lane.queue.clear()
        lane.size = 0

    def close(self) -> None:
        """The node closed: what the lanes still hold is dead letters (a delivery task cancelled
        before its first step never ran its own ``finally``)."""
        for mailbox, lane in list(self._lanes.items()):
            self._drop(mailbox, lane)
