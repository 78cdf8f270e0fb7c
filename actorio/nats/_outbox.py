"""The outbox: what a node sends to remote actors, in the order it was told.

Owns the ordered sending of ``tell``, ``tell_nowait`` and ``ask`` (a `RemoteRef` sends through
its node's `Outbox`): a message is encoded at the call, so that its errors raise there; it is then
published at once, or, while earlier ``tell_nowait`` calls are still queued, queued behind them
and sent by one flusher task. An ask waits for what was queued before it, then is a request (the
node's plumbing). A message carrying an ask is handed on: the remote actor answers that ask.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import NO_SENDER, Message
from ..lowlevel import AskRef, LogLimit, Payload, hand_off, inject, report_transport, transport_operation
from ._addresses import Addresses
from ._batch import MAX_BATCH, MAX_BATCH_BYTES, batch_headers, joinable
from ._codec import encode_message, payload_bytes, read_reply
from ._connection import GuardedClient
from ._durable import Streams

if TYPE_CHECKING:
    from ._publication import Spawn
    from ._remote import RemoteRef

__all__ = ["Outbox"]

_logger = logging.getLogger("actorio.nats")

Sending = tuple[
    "RemoteRef[Any] | None", bytes, "dict[str, str] | None", "str | None", "asyncio.Future[None] | None"
]
"""What one queued send publishes: to a reference (None: nothing, a marker to wait for), its body,
its headers, durable, its message id, and the future of the caller waiting for it (None for
``tell_nowait``). One flat tuple: a queued tell is one object for the collector to track."""
Request = Callable[["RemoteRef[Any]", bytes, "float | None"], Awaitable[Msg]]


class Outbox:
    """What a node sends to remote actors, in the order it was told (see the module docstring).

    ``request`` is the node's request plumbing: it sends a request body to a reference and
    returns the reply (``timeout`` ``None``: the node's ``ask_timeout``).
    """

    def __init__(
        self,
        nc: Client,
        *,
        spawn: Spawn,
        addresses: Addresses,
        streams: Streams,
        request: Request,
    ) -> None:
        self._nc = nc
        self._spawn = spawn
        self._addresses = addresses
        self._streams = streams
        self._request = request
        self._queue: collections.deque[Sending] = collections.deque()
        self.flusher: asyncio.Task[None] | None = None
        """The task sending what is queued, while there is some."""
        self._failures = LogLimit(_logger)
        self.node_addresses = f"{addresses.prefix}.node."
        """Where actorio nodes of this prefix receive for their actors that travelled as senders:
        one node each, never a pool, so tells to them leave as batches (see `sender_of`)."""

    def tell_nowait(self, ref: RemoteRef[Any], message: Message[Any]) -> None:
        """Queue ``message`` for ``ref``; an error while publishing it is logged (within a limit:
        ten lines a minute, then a count)."""
        sending = self._sending(ref, message, None)
        if sending is not None:
            self._queue.append(sending)
            flusher = self.flusher
            if flusher is None or flusher.done():
                self.flusher = self._spawn(self._flush())

    async def tell(self, ref: RemoteRef[Any], message: Message[Any], msg_id: str | None) -> None:
        """Send ``message`` to ``ref`` after what is queued; to a durable reference, return once
        the stream stored it (under ``msg_id``, or one made for this call)."""
        sending = self._sending(ref, message, msg_id)
        if sending is not None:
            await self._send(sending)

    async def tell_payload(self, ref: RemoteRef[Any], payload: Payload) -> None:
        """Send a raw payload to ``ref``, as it is, after what is queued."""
        body = payload_bytes(payload)
        carried: dict[str, str] = {}
        inject(carried)  # the sending code's trace context, if a tracer propagates one
        headers = carried or None
        report_transport("nats", "sent", "tell")
        await self._send((ref, body, headers, None, None))

    async def ask(self, ref: RemoteRef[Any], message: Message[Any], timeout: float | None) -> Any:
        """Ask ``ref`` after what is queued; the reply, validated against the reply type."""
        body = encode_message(message)
        with transport_operation("nats", "ask", ref.identifier, _template(ref)):
            if self._queue:
                await self._after_queued()
            reply = await self._request(ref, body, timeout)
            return read_reply(ref.identifier, reply.headers, reply.data, message)

    async def ask_payload(self, ref: RemoteRef[Any], payload: Payload, timeout: float | None) -> Any:
        """Ask ``ref`` with a raw payload after what is queued; the reply as JSON-decoded data."""
        body = payload_bytes(payload)
        with transport_operation("nats", "ask", ref.identifier, _template(ref)):
            await self._after_queued()
            reply = await self._request(ref, body, timeout)
            return read_reply(ref.identifier, reply.headers, reply.data, None)

    async def flushed(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until what is queued has been sent."""
        if self.flusher is not None and not self.flusher.done():
            await asyncio.wait([self.flusher], timeout=timeout)

    def _sending(self, ref: RemoteRef[Any], message: Message[Any], msg_id: str | None) -> Sending | None:
        """What publishes ``message`` to ``ref`` (encoded now, so that errors raise at the call);
        None for a message carrying an ask, which is handed on at once."""
        sender = message.sender
        if type(sender) is AskRef:
            # A message carrying an ask, handed on: the remote actor answers it.
            ask = hand_off(message)
            assert ask is not None
            self._spawn(self._answer_forwarded(ref, message, ask))
            return None
        body = encode_message(message)
        # Most tells have no sender: no call to make its address then.
        carried = {} if sender is NO_SENDER else self._addresses.headers(message) or {}
        inject(carried)  # the sending code's trace context, if a tracer propagates one
        report_transport("nats", "sent", "tell")
        return ref, body, carried or None, msg_id, None

    async def _answer_forwarded(self, ref: RemoteRef[Any], message: Message[Any], ask: AskRef) -> None:
        try:
            reply = await self.ask(ref, message, None)
        except Exception as error:
            ask.fail(error)
        else:
            ask.tell_nowait(reply)

    def _enqueue(self, sending: Sending) -> None:
        self._queue.append(sending)
        if self.flusher is None or self.flusher.done():
            self.flusher = self._spawn(self._flush())

    async def _publish(self, sending: Sending) -> None:
        ref, body, headers, msg_id, _ = sending
        if ref is None:
            return
        if ref.durable:
            await self._streams.store(ref, body, headers, msg_id)
        else:
            await self._nc.publish(ref.subject, body, headers=headers)

    async def _flush(self) -> None:
        """Send what is queued, in order. Each core message is one ``publish``: nats-py appends it to
        its write buffer without suspending, and its own flusher writes the whole buffer at once.
        Tells queued one after the other through batched references to one subject, with no
        headers, leave as one batch (``_batch``)."""
        queue = self._queue
        nc = self._nc
        publish = nc.publish
        # Without headers, the client's guard (`GuardedClient.publish`, which checks headers
        # only) has nothing to check: such a message goes to nats-py's publish beneath it, a
        # call and a coroutine less per tell. A publish wrapped or overridden since is kept.
        plain = Client.publish.__get__(nc) if _is_guard(publish) else publish
        last: RemoteRef[Any] | None = None  # a burst goes to one reference: its fields read once
        subject, durable, batch = "", False, False
        while queue:
            ref, body, headers, msg_id, done = queue.popleft()
            dones: list[asyncio.Future[None] | None] | None = None
            try:
                if ref is None:
                    pass  # a marker: what was queued before it is sent
                else:
                    if ref is not last:
                        last, subject, durable, batch = ref, ref.subject, ref.durable, ref.batch
                    if durable:
                        await self._streams.store(ref, body, headers, msg_id)
                    elif headers is not None:
                        await publish(subject, body, headers=headers)
                    elif queue and batch and joinable(body):
                        body, headers, dones = self._batched(ref, body, done)
                        await publish(subject, body, headers=headers)
                    else:
                        await plain(subject, body)
            except Exception as error:
                lost = 0
                for each in (done,) if dones is None else dones:
                    if each is None:
                        lost += 1
                    elif not each.done():
                        each.set_exception(error)
                if lost:
                    self._failures.log(
                        logging.ERROR, "tell_nowait could not publish %d message(s): %r", lost, error
                    )
            else:
                if dones is None:
                    if done is not None and not done.done():
                        done.set_result(None)
                else:
                    for each in dones:
                        if each is not None and not each.done():
                            each.set_result(None)

    def _batched(
        self, first: RemoteRef[Any], body: bytes, done: asyncio.Future[None] | None
    ) -> tuple[bytes, dict[str, str] | None, list[asyncio.Future[None] | None]]:
        """``body``, told to ``first`` (a batched core reference), joined with the tells queued right after
        it for the same subject (taken off the queue), within `MAX_BATCH` tells and
        `MAX_BATCH_BYTES`: the body and headers to publish, and the futures of the tells in it."""
        queue = self._queue
        subject = first.subject
        bodies = [body]
        dones = [done]
        room = min(MAX_BATCH_BYTES, self._nc.max_payload - 64) - len(body)
        while queue and len(bodies) < MAX_BATCH:
            ref, next_body, headers, _, next_done = queue[0]
            room -= len(next_body) + 1
            if room < 0 or headers is not None or not joinable(next_body):
                break
            if ref is not first and (ref is None or not ref.batch or ref.subject != subject):
                break
            queue.popleft()
            bodies.append(next_body)
            dones.append(next_done)
        if len(bodies) == 1:
            return body, None, dones
        return b"\n".join(bodies), batch_headers(len(bodies)), dones

    async def _send(self, sending: Sending) -> None:
        if self._queue:
            # Earlier tell_nowait calls are still queued: go after them, keeping the order.
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._enqueue((*sending[:4], done))
            await done
        else:
            # nats-py appends the message to its buffer before its first suspension: in order.
            await self._publish(sending)

    async def _after_queued(self) -> None:
        """Wait until what was queued so far has been sent (an ask goes after it)."""
        if self._queue:
            await self._send((None, b"", None, None, None))


def _is_guard(publish: object) -> bool:
    """Whether ``publish`` is a client's `GuardedClient.publish` itself (not a wrapper set on the
    instance, nor a subclass's override)."""
    return getattr(publish, "__func__", None) is GuardedClient.publish


def _template(ref: RemoteRef[Any]) -> str:
    """``ref``'s destination for metrics: its published name, or ``""`` for a sender's address (its
    name is its subject: one per sender)."""
    name = ref.identifier
    return "" if name == ref.subject else name
