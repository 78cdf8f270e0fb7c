"""Durable mailboxes: a published name's JetStream stream, and what is stored in it.

Owns `Durable` (the settings), the stream's name (`stream_name`), and `Streams`: setting up a
durable name's stream (work-queue retention) and its one durable pull consumer, shared by every
process that publishes the name, and storing a message in it (the sending side, retried under one
message id so that the stream keeps it once).
"""

# pyright: reportUnknownMemberType=false
# nats-py leaves a few parameters unannotated (``**params``, ``Future`` without its argument).

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from ._codec import MSG_ID
from ._errors import ActorNotFound

if TYPE_CHECKING:
    from ._remote import RemoteRef

__all__ = ["CONSUMER", "Durable", "Streams", "stream_name"]

_logger = logging.getLogger("actorio.nats")

CONSUMER = "actorio"
"""The durable consumer of every durable name's stream (one, shared by the name's processes)."""


@dataclass(frozen=True)
class Durable:
    """The settings of a durable mailbox (``node.publish(name, actor, durable=Durable(...))``).

    - ``redelivery_delay``: seconds a delivered message may stay unacknowledged (the consumer's
      ``ack_wait``) before JetStream delivers it again, to this or another process of the pool.
      A process that dies (or whose event loop stops running) has its messages delivered again
      after it; a working one reports the messages it fetched, the one being handled included,
      in progress every half delay. 30 s by default.
    - ``dedupe_window``: seconds during which a message stored again with the same message id is
      dropped by the stream (its ``duplicate_window``). 120 s by default.
    - ``ordered``: deliver one message at a time across the whole pool (``max_ack_pending=1``,
      no prefetch), so that a redelivered message is handled before any later one: strict stream
      order, at the cost of throughput. Off by default: then a redelivered message is handled after
      messages stored later than it.
    - ``prefetch``: messages fetched at once by each process (ignored when ``ordered``).
    - ``max_deliver``: deliveries of one message before JetStream gives up on it (``None``: no limit).
    """

    redelivery_delay: float = 30.0
    dedupe_window: float = 120.0
    ordered: bool = False
    prefetch: int = 32
    max_deliver: int | None = None

    def __post_init__(self) -> None:
        if not self.redelivery_delay > 0:
            raise ValueError(f"redelivery_delay must be positive, not {self.redelivery_delay!r}")
        if not self.dedupe_window > 0:
            raise ValueError(f"dedupe_window must be positive, not {self.dedupe_window!r}")
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {self.prefetch!r}")
        if self.max_deliver is not None and self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1 or None, not {self.max_deliver!r}")


def stream_name(prefix: str, name: str) -> str:
    """The JetStream stream of a durable actor: readable, and distinct for distinct names."""
    digest = hashlib.sha1(f"{prefix}.{name}".encode()).hexdigest()[:8]
    return f"{prefix}_{name.replace('.', '_')}_{digest}".upper()


class Streams:
    """A node's side of JetStream: sets up durable names' streams and stores messages in them."""

    def __init__(self, js: JetStreamContext, *, url: str, prefix: str, store_timeout: float) -> None:
        self._js = js
        self._url = url
        self._prefix = prefix
        self._store_timeout = store_timeout

    async def set_up(self, name: str, subject: str, settings: Durable) -> JetStreamContext.PullSubscription:
        """Create (or update) the stream that captures ``subject`` and its durable consumer, and
        bind a pull subscription to it. Raises ``RuntimeError`` without JetStream, ``ValueError``
        for settings the server refuses to change."""
        stream = stream_name(self._prefix, name)
        config = StreamConfig(
            name=stream,
            subjects=[subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=settings.dedupe_window,
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self._js.update_stream(config)
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            raise RuntimeError(
                f"a durable mailbox needs JetStream, which the server at {self._url} does not offer "
                "(start nats-server with -js)"
            ) from None
        consumer = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.redelivery_delay,
            max_ack_pending=1 if settings.ordered else max(1000, settings.prefetch * 8),
            max_deliver=settings.max_deliver if settings.max_deliver is not None else -1,
        )
        try:
            existing = (await self._js.consumer_info(stream, CONSUMER)).config
        except nats.js.errors.NotFoundError:
            pass
        else:
            changed = [
                f"{field} {getattr(existing, field)!r} -> {getattr(consumer, field)!r}"
                for field in ("ack_wait", "max_ack_pending", "max_deliver")
                if getattr(existing, field) != getattr(consumer, field)
            ]
            if changed:
                _logger.warning("durable %r published with other settings: %s", name, ", ".join(changed))
        try:
            await self._js.add_consumer(stream, consumer)
        except nats.js.errors.BadRequestError as error:
            raise ValueError(
                f"{name!r} is already published durably with other settings ({error.description})"
            ) from None
        return await self._js.pull_subscribe_bind(durable=CONSUMER, stream=stream)

    async def store(
        self, ref: RemoteRef[Any], body: bytes, headers: Mapping[str, str] | None, msg_id: str | None
    ) -> None:
        """Publish to the stream and wait for its acknowledgement, retrying with the same message id
        (so that the stream stores it once) until ``store_timeout``."""
        stored = dict(headers or {})
        stored[MSG_ID] = msg_id or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._store_timeout
        while True:
            remaining = deadline - loop.time()
            try:
                await self._js.publish(
                    ref.subject, body, timeout=max(0.05, min(0.5, remaining)), headers=stored
                )
                return
            except nats.errors.NoRespondersError:
                if loop.time() >= deadline:
                    raise ActorNotFound(ref.identifier, ref.subject) from None
                # No stream (yet, or JetStream still starting after a restart): a pause, then again.
                await asyncio.sleep(0.05)
            except (TypeError, KeyError, ValueError):
                # Answered, but not by a stream: the name is published without a durable mailbox.
                raise ValueError(
                    f"{ref.identifier} is not published with a durable mailbox: "
                    "send to it through node.ref(name) without durable=True (nothing was delivered)"
                ) from None
            except (nats.errors.TimeoutError, nats.errors.ConnectionReconnectingError) as error:
                if loop.time() >= deadline:
                    raise asyncio.TimeoutError(f"the stream did not store the message: {error!r}") from None
                if not isinstance(error, nats.errors.TimeoutError):
                    await asyncio.sleep(0.05)  # reconnecting: a pause (a timeout waited already)
