"""Forged subjects of a durable entity type's mailbox: subjects no key of the type could have
(no shard's number, more tokens, a key of another shard), written by someone other than
actorio. Their messages are dropped: each a dead letter ``invalid`` of the process (an ask is
answered with the error), never handled, and never stored in the type's dead-letter stream,
which keeps what handlers could not take (junk anyone may publish would push those out).

The shard's pump drops a message of its own shard's subjects (`drop`); the type's scan drops
those of subjects no shard's consumer reads (`drop_found`), at most `MAX_PER_SCAN` a scan, in a
task of its own: it waits on the server, and the scans must keep waking shards meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from .. import dead_letters
from ._codec import REPLY, answered

if TYPE_CHECKING:
    from ._durable_entities import DurableMailbox

__all__ = ["MAX_PER_SCAN", "drop", "drop_found"]

MAX_PER_SCAN = 100
"""Messages of forged subjects one scan drops, at most (the next scan drops more)."""


async def drop(mailbox: DurableMailbox, msg: Msg, text: str) -> bool:
    """Take ``msg``, whose subject names no valid key (``text`` says why), out of the mailbox
    (acknowledged, and the server's answer awaited: the work queue has removed it then, before
    its consumer goes), a dead letter ``invalid``; an ask is answered with the error. False if
    the server did not answer (delivered again, after a while)."""
    error = ValueError(text)
    try:
        await msg.ack_sync()
    except nats.errors.Error:
        return False
    identifier = mailbox.identifier_of(msg)
    dead_letters.record(msg.data, identifier, "invalid", error)
    await mailbox.receiver.send_error(identifier, (msg.headers or {}).get(REPLY), error, answered(msg))
    return True


async def drop_found(mailbox: DurableMailbox, counts: dict[str, int]) -> None:
    """Drop at most `MAX_PER_SCAN` of the messages a scan found on forged subjects (``counts``:
    how many on each)."""
    budget = MAX_PER_SCAN
    for subject, count in counts.items():
        if budget <= 0:
            return
        budget -= await _drop_subject(mailbox, subject, min(count, budget))


async def _drop_subject(mailbox: DurableMailbox, subject: str, count: int) -> int:
    """Drop up to ``count`` messages of ``subject`` (as many as the scan found: no fetch waits
    for one more), through a consumer of their own (then deleted); return how many."""
    digest = hashlib.sha1(subject.encode()).hexdigest()[:16]
    name = f"forged-{digest}"
    config = ConsumerConfig(
        durable_name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=mailbox.lease,
        max_ack_pending=1,
    )
    js = mailbox.js
    # nats-py leaves ``**params`` unannotated in add_consumer.
    await js.add_consumer(mailbox.stream, config)  # pyright: ignore[reportUnknownMemberType]
    pull = await js.pull_subscribe_bind(durable=name, stream=mailbox.stream)
    dropped = 0
    try:
        while dropped < count:
            try:
                msg = (await pull.fetch(1, timeout=1.0))[0]
            except nats.errors.TimeoutError:
                break  # taken meanwhile (another host's scan)
            if not await drop(mailbox, msg, f"the subject {subject[:200]!r} names no valid entity key"):
                break
            dropped += 1
    finally:
        with contextlib.suppress(nats.errors.Error):
            await pull.unsubscribe()
        with contextlib.suppress(nats.errors.Error, nats.js.errors.NotFoundError):
            await js.delete_consumer(mailbox.stream, name)
    return dropped
