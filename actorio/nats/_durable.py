"""Durable mailboxes: a published name's JetStream stream, what is stored in it, and its pump.

Owns:

- `Durable`, the settings, and `stream_name`, the stream of a durable name;
- `Streams`: setting up a durable name's stream (work-queue retention), its dead-letter stream
  (``_dead_letter_stream``) and its one durable pull consumer, ``actorio``, shared by every
  process that publishes the name; and storing a message in it (the sending side, retried under
  one message id so that the stream keeps it once);
- `Pump`: a durable publication's inlet. It fetches, and has each stored message settled by
  the durable rules (``_settlement``: acknowledged once handled; if its handler failed,
  delivered again after a growing delay, up to ``max_deliver`` deliveries, then moved to the
  dead-letter stream; given back if the incarnation ended first). It reports the fetched
  messages waiting their turn in progress, and makes the durable consumer again if it was
  deleted (nobody answers its fetches then).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from .. import Backoff
from ..lowlevel import Mailbox
from ._codec import MSG_ID
from ._dead_letter_stream import DeadLetterStreams
from ._errors import NO_JETSTREAM, ActorNotFound
from ._publication import Spawn
from ._settlement import Failures, Settlement, give_back, report_progress
from ._stream_setup import made_or_kept

if TYPE_CHECKING:
    from ._publication import Receiver
    from ._remote import RemoteRef

__all__ = ["CONSUMER", "Durable", "Pump", "Streams", "stream_name"]

_logger = logging.getLogger("actorio.nats")

CONSUMER = "actorio"
"""The durable consumer of every durable name's stream (one, shared by the name's processes)."""

_MAX_DELIVER = "actorio.max_deliver"
"""The consumer's metadata key noting the pool's ``Durable.max_deliver``."""


RETRY_BACKOFF = Backoff(min_delay=1.0, max_delay=60.0, factor=2.0, jitter=0.2)
"""The default delays between the deliveries of a message whose handler failed."""


@dataclass(frozen=True)
class Durable:
    """The settings of a durable mailbox (``node.publish(name, actor, durable=Durable(...))``).

    - ``redelivery_delay``: seconds a delivered message may stay unacknowledged (the consumer's
      ``ack_wait``) before JetStream delivers it again, to this or another process of the pool.
      A process that dies (or whose event loop stops running) has its messages delivered again
      after it; a working one reports the messages it fetched, the one being handled included,
      in progress every half delay. 30 s by default.
    - ``dedupe_window``: seconds during which a message stored again with the same message id is
      dropped by the stream (its ``duplicate_window``). 120 s by default; at least 0.001 s.
    - ``ordered``: deliver one message at a time across the whole pool (``max_ack_pending=1``,
      no prefetch), so that a redelivered message is handled before any later one: strict stream
      order, at the cost of throughput. Off by default: then a redelivered message is handled after
      messages stored later than it.
    - ``prefetch``: messages fetched at once by each process (ignored when ``ordered``).
    - ``max_deliver``: the deliveries of one message: when its handler fails on the last of them,
      the message is moved to the name's dead-letter stream (``<stream>_DLQ``, subject
      ``<prefix>.dlq.<name>``) and taken out of the name's stream. Every delivery counts, those to
      a process that died or closed holding it included; a message delivered more than twice
      ``max_deliver`` times without its handler failing (processes that died on it) is moved
      there without being handled again. 5 by default; ``None``: no limit (a failing message is
      delivered again, ever later, until its handler succeeds).
    - ``retry_backoff``: how long a message whose handler failed waits before its next delivery:
      ``retry_backoff.delay(n)`` after its ``n``-th delivery (from 0). 1 s doubling up to 60 s,
      plus up to 20 %: with the default ``max_deliver``, a message that always fails is moved
      to the dead-letter stream about 15 s after its first delivery.
    - ``dead_letter_limit``: how many messages the dead-letter stream keeps (beyond, the oldest is
      discarded); ``None``: all, until deleted. 10,000 by default.
    - ``shards``: durable entity types only: how many shards the type's keys are spread over
      (a key's shard is a digest of the key modulo ``shards``). A shard is what hosts place and
      lease, and each active shard has one consumer: enough shards to spread a type over its
      hosts evenly, few enough that the server keeps up with their consumers. 64 by default;
      every host of a type uses the same number (see docs/entities.md).
    """

    redelivery_delay: float = 30.0
    dedupe_window: float = 120.0
    ordered: bool = False
    prefetch: int = 32
    max_deliver: int | None = 5
    retry_backoff: Backoff = RETRY_BACKOFF
    dead_letter_limit: int | None = 10_000
    shards: int = 64

    def __post_init__(self) -> None:
        if not self.redelivery_delay > 0:
            raise ValueError(f"redelivery_delay must be positive, not {self.redelivery_delay!r}")
        if not self.dedupe_window >= 0.001:  # the server's window is in nanoseconds, 0 its default
            raise ValueError(f"dedupe_window must be at least 0.001 s, not {self.dedupe_window!r}")
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {self.prefetch!r}")
        if self.max_deliver is not None and self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1 or None, not {self.max_deliver!r}")
        if self.dead_letter_limit is not None and self.dead_letter_limit < 1:
            raise ValueError(f"dead_letter_limit must be at least 1 or None, not {self.dead_letter_limit!r}")
        if not 1 <= self.shards <= 1000:
            raise ValueError(f"shards must be from 1 to 1000, not {self.shards!r}")

    def retry_delay(self, deliveries: int) -> float:
        """How long a message given back after its ``deliveries``-th delivery waits before it is
        delivered again: ``retry_backoff``'s delay for that delivery (from the first)."""
        return self.retry_backoff.delay(max(0, deliveries - 1))


def stream_name(prefix: str, name: str) -> str:
    """The JetStream stream of a durable actor: readable, and distinct for distinct pairs of a
    prefix and a name (``"a.b"`` and ``"c"`` is not ``"a"`` and ``"b.c"``). A stream name holds
    no dot: the prefix's and the name's dots become ``_``."""
    # A prefix without a dot keeps the digest of "prefix.name", so that existing streams keep
    # their names; a dotted prefix (whose stream could not be made before) has "prefix/name".
    digest = hashlib.sha1(f"{prefix}{'/' if '.' in prefix else '.'}{name}".encode()).hexdigest()[:8]
    return f"{prefix}_{name}_{digest}".replace(".", "_").upper()


class Streams:
    """A node's side of JetStream: sets up durable names' streams and stores messages in them;
    ``dead`` does the same for their dead-letter streams."""

    def __init__(self, nc: Client, *, prefix: str, store_timeout: float) -> None:
        # nats-py leaves ``**opts`` of jetstream() unannotated.
        js: JetStreamContext = nc.jetstream()  # pyright: ignore[reportUnknownMemberType]
        self._js = js
        self._prefix = prefix
        self._store_timeout = store_timeout
        self.dead = DeadLetterStreams(
            js, prefix=prefix, timeout=min(store_timeout, 5.0), max_payload=lambda: nc.max_payload
        )

    async def provision(self, name: str, subject: str, settings: Durable) -> str:
        """Make (or keep, or update: `made_or_kept`) the stream that captures ``subject`` and its
        dead-letter stream; return the stream's name. Raises as `set_up`."""
        stream = stream_name(self._prefix, name)
        config = StreamConfig(
            name=stream,
            subjects=[subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=settings.dedupe_window,
        )
        await made_or_kept(self._js, config, "a durable mailbox")
        await self.dead.set_up(
            name, stream, limit=settings.dead_letter_limit, dedupe_window=settings.dedupe_window
        )
        return stream

    async def set_up(
        self, name: str, subject: str, settings: Durable
    ) -> tuple[JetStreamContext.PullSubscription, Callable[[], Awaitable[None]]]:
        """Make (or keep, or update: `made_or_kept`) the stream that captures ``subject`` and its
        dead-letter stream, create its durable consumer, and bind a pull subscription to it;
        return it, and what makes the consumer again if it was deleted (see `Pump`). Raises
        ``RuntimeError`` without JetStream, ``ValueError`` for settings the server (or the
        user's rights) refuses to change."""
        stream = await self.provision(name, subject, settings)
        # JetStream itself never gives up on a message (it would stay in the stream for good, a
        # work queue's message being removed only when acknowledged): the pump counts deliveries
        # and moves a message to the dead-letter stream. The pool's limit is noted in metadata.
        consumer = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.redelivery_delay,
            max_ack_pending=1 if settings.ordered else max(1000, settings.prefetch * 8),
            max_deliver=-1,
            metadata={_MAX_DELIVER: str(settings.max_deliver)},
        )
        try:
            existing = (await self._js.consumer_info(stream, CONSUMER)).config
        except nats.js.errors.NotFoundError:
            pass
        else:
            changed = [
                f"{field} {getattr(existing, field)!r} -> {getattr(consumer, field)!r}"
                for field in ("ack_wait", "max_ack_pending")
                if getattr(existing, field) != getattr(consumer, field)
            ]
            before = (existing.metadata or {}).get(_MAX_DELIVER)
            if before is not None and before != str(settings.max_deliver):
                changed.append(f"max_deliver {before} -> {settings.max_deliver}")
            if changed:
                _logger.warning("durable %r published with other settings: %s", name, ", ".join(changed))
        try:
            # nats-py leaves ``**params`` unannotated in add_consumer.
            await self._js.add_consumer(stream, consumer)  # pyright: ignore[reportUnknownMemberType]
        except nats.js.errors.BadRequestError as error:
            raise ValueError(
                f"{name!r} is already published durably with other settings ({error.description})"
            ) from None

        async def restore() -> None:
            try:
                await self._js.consumer_info(stream, CONSUMER)
            except nats.js.errors.NotFoundError:
                _logger.warning("durable %r: its consumer was deleted, and is made again", name)
                await self._js.add_consumer(stream, consumer)  # pyright: ignore[reportUnknownMemberType]

        return await self._js.pull_subscribe_bind(durable=CONSUMER, stream=stream), restore

    async def store(
        self, ref: RemoteRef[Any], body: bytes, headers: Mapping[str, str] | None, msg_id: str | None
    ) -> tuple[str, int]:
        """Publish to the stream and wait for its acknowledgement, retrying with the same message id
        (so that the stream stores it once) until ``store_timeout``; return where it is stored
        (the stream's name and sequence)."""
        return await self.store_at(ref.subject, ref.identifier, body, headers, msg_id)

    async def store_at(
        self,
        subject: str,
        identifier: str,
        body: bytes,
        headers: Mapping[str, str] | None,
        msg_id: str | None,
    ) -> tuple[str, int]:
        """`store` to ``subject`` (a stream's), for the mailbox named ``identifier`` in errors."""
        stored = dict(headers or {})
        stored[MSG_ID] = msg_id or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._store_timeout
        wait = 0.5  # for an acknowledgement: doubled after each miss (up to 4 s), so that a busy
        # server is not sent every stored message again each half second (the message id makes
        # a copy harmless, not free)
        while True:
            remaining = deadline - loop.time()
            try:
                ack = await self._js.publish(
                    subject, body, timeout=max(0.05, min(wait, remaining)), headers=stored
                )
                return ack.stream, ack.seq
            except nats.errors.NoRespondersError:
                if loop.time() >= deadline:
                    raise ActorNotFound(identifier, subject) from None
                # No stream (yet, or JetStream still starting after a restart): a pause, then again.
                await asyncio.sleep(0.05)
            except (TypeError, KeyError, ValueError):
                # Answered, but not by a stream: the name is published without a durable mailbox.
                raise ValueError(
                    f"{identifier} is not published with a durable mailbox: "
                    "send to it through node.ref(name) without durable=True (nothing was delivered)"
                ) from None
            except (nats.errors.TimeoutError, nats.errors.ConnectionReconnectingError) as error:
                if loop.time() >= deadline:
                    raise asyncio.TimeoutError(f"the stream did not store the message: {error!r}") from None
                if isinstance(error, nats.errors.TimeoutError):
                    wait = min(wait * 2, 4.0)
                else:
                    await asyncio.sleep(0.05)  # reconnecting: a pause (a timeout waited already)


class Pump:
    """A durable publication's inlet: fetches from the durable consumer and hands each stored
    message to the actor's running incarnation, one at a time; settles it once handled (the
    durable rules, ``_settlement``)."""

    def __init__(
        self,
        nc: Client,
        receiver: Receiver,
        pull: JetStreamContext.PullSubscription,
        settings: Durable,
        *,
        spawn: Spawn,
        mailbox: Mailbox,
        name: str,
        dead: DeadLetterStreams,
        restore: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._nc = nc
        self._pull = pull
        self._restore = restore
        self._settings = settings
        self._spawn = spawn
        self._mailbox = mailbox
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._closing = False
        self._failures = Failures()
        self._settlement = Settlement(
            receiver,
            settings,
            mailbox=mailbox,
            name=name,
            dead=dead,
            dead_name=name,
            failures=self._failures,
            closing=self.closing,
        )

    def closing(self) -> bool:
        """True from the start of `close` (read again after each await: it changes meanwhile)."""
        return self._closing

    async def open(self) -> None:
        """Start fetching (the consumer exists: a message stored from now on reaches the actor)."""
        self._failures.open()
        self._task = self._spawn(self._run())

    async def close(self, timeout: float) -> None:
        """Finish and settle the message being handled, give back (negative acknowledgement)
        the prefetched ones, and stop fetching."""
        self._closing = True
        pump = self._task
        if pump is not None and not pump.done():
            if not self._busy:
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), timeout)
        self._failures.close()
        if not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await asyncio.wait_for(self._pull.unsubscribe(), timeout)

    async def _run(self) -> None:
        pull = self._pull
        settings = self._settings
        batch = 1 if settings.ordered else settings.prefetch
        failures = 0
        while not self.closing():
            try:
                messages = await pull.fetch(batch, timeout=1.0)
                failures = 0
            except asyncio.TimeoutError:  # nats-py's, or asyncio's from a batch fetch (3.10: no OSError)
                continue
            except (nats.errors.Error, OSError) as error:
                # The server is away: wait for the client to reconnect, backing off up to 1 s.
                failures += 1
                _logger.debug("fetch failed (%r), retrying", error)
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                if failures % 4 == 0 and isinstance(error, NO_JETSTREAM) and self._restore is not None:
                    # Nobody answers fetches of a consumer that is gone (deleted by an operator,
                    # another process, or its stream's limits): make it again.
                    with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                        await self._restore()
                continue
            self._busy = True
            # The consumer's ack_wait runs from each message's delivery: the messages of a batch
            # waiting their turn are reported in progress, so that only a process that stopped
            # working (killed, hung) has its messages delivered again.
            waiting = list(messages)
            keep_alive = self._spawn(report_progress(waiting, settings.redelivery_delay / 2))
            try:
                for index, msg in enumerate(messages):
                    if self.closing():
                        await give_back(messages[index:])
                        return
                    try:
                        handled = await self._settlement.handle(msg)
                    except Exception as error:
                        await self._settlement.node_failed(msg, error)
                        handled = True
                    waiting.remove(msg)
                    if handled:
                        continue
                    await give_back([msg])
                    if self._mailbox.closed or self.closing():
                        # The actor stopped for good (or the name is being unpublished): the
                        # rest goes back to the pool. While a supervised child restarts, the
                        # batch waits for its next incarnation instead (a message given back
                        # counts one more delivery).
                        await give_back(messages[index + 1 :])
                        if self.closing():
                            return
                        break
            finally:
                keep_alive.cancel()
                self._busy = False
