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

from .. import Message
from ..lowlevel import AskRef, LogLimit, Payload, hand_off, inject, report_transport
from ._addresses import Addresses
from ._codec import encode_message, payload_bytes, read_reply
from ._durable import Streams

if TYPE_CHECKING:
    from ._publication import Spawn
    from ._remote import RemoteRef

__all__ = ["Outbox"]

_logger = logging.getLogger("actorio.nats")

Send = Callable[[], Awaitable[Any]]
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
        self._queue: collections.deque[tuple[Send, asyncio.Future[None] | None]] = collections.deque()
        self.flusher: asyncio.Task[None] | None = None
        """The task sending what is queued, while there is some."""
        self._failures = LogLimit(_logger)

    def tell_nowait(self, ref: RemoteRef[Any], message: Message[Any]) -> None:
        """Queue ``message`` for ``ref``; an error while publishing it is logged (within a limit:
        ten lines a minute, then a count)."""
        send = self._sending(ref, message, None)
        if send is not None:
            self._enqueue(send, None)

    async def tell(self, ref: RemoteRef[Any], message: Message[Any], msg_id: str | None) -> None:
        """Send ``message`` to ``ref`` after what is queued; to a durable reference, return once
        the stream stored it (under ``msg_id``, or one made for this call)."""
        send = self._sending(ref, message, msg_id)
        if send is not None:
            await self._send(send)

    async def tell_payload(self, ref: RemoteRef[Any], payload: Payload) -> None:
        """Send a raw payload to ``ref``, as it is, after what is queued."""
        body = payload_bytes(payload)
        carried: dict[str, str] = {}
        inject(carried)  # the sending code's trace context, if a tracer propagates one
        headers = carried or None
        report_transport("nats", "sent", "tell")
        if ref.durable:
            await self._send(lambda: self._streams.store(ref, body, headers, None))
        else:
            await self._send(lambda: self._nc.publish(ref.subject, body, headers=headers))

    async def ask(self, ref: RemoteRef[Any], message: Message[Any], timeout: float | None) -> Any:
        """Ask ``ref`` after what is queued; the reply, validated against the reply type."""
        body = encode_message(message)
        await self._after_queued()
        reply = await self._request(ref, body, timeout)
        return read_reply(ref.identifier, reply.headers, reply.data, message)

    async def ask_payload(self, ref: RemoteRef[Any], payload: Payload, timeout: float | None) -> Any:
        """Ask ``ref`` with a raw payload after what is queued; the reply as JSON-decoded data."""
        body = payload_bytes(payload)
        await self._after_queued()
        reply = await self._request(ref, body, timeout)
        return read_reply(ref.identifier, reply.headers, reply.data, None)

    async def flushed(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until what is queued has been sent."""
        if self.flusher is not None and not self.flusher.done():
            await asyncio.wait([self.flusher], timeout=timeout)

    def _sending(self, ref: RemoteRef[Any], message: Message[Any], msg_id: str | None) -> Send | None:
        """What publishes ``message`` to ``ref`` (encoded now, so that errors raise at the call);
        None for a message carrying an ask, which is handed on at once."""
        ask = hand_off(message)
        if ask is not None:
            # A message carrying an ask, handed on: the remote actor answers it.
            self._spawn(self._answer_forwarded(ref, message, ask))
            return None
        body = encode_message(message)
        carried = self._addresses.headers(message) or {}
        inject(carried)  # the sending code's trace context, if a tracer propagates one
        report_transport("nats", "sent", "tell")
        headers = carried or None
        if ref.durable:
            return lambda: self._streams.store(ref, body, headers, msg_id)
        return lambda: self._nc.publish(ref.subject, body, headers=headers)

    async def _answer_forwarded(self, ref: RemoteRef[Any], message: Message[Any], ask: AskRef) -> None:
        try:
            reply = await self.ask(ref, message, None)
        except Exception as error:
            ask.fail(error)
        else:
            ask.tell_nowait(reply)

    def _enqueue(self, send: Send, done: asyncio.Future[None] | None) -> None:
        self._queue.append((send, done))
        if self.flusher is None or self.flusher.done():
            self.flusher = self._spawn(self._flush())

    async def _flush(self) -> None:
        queue = self._queue
        while queue:
            send, done = queue.popleft()
            try:
                await send()
            except Exception as error:
                if done is None:
                    self._failures.log(logging.ERROR, "tell_nowait could not publish: %r", error)
                elif not done.done():
                    done.set_exception(error)
            else:
                if done is not None and not done.done():
                    done.set_result(None)

    async def _send(self, send: Send) -> None:
        if self._queue:
            # Earlier tell_nowait calls are still queued: go after them, keeping the order.
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._enqueue(send, done)
            await done
        else:
            # nats-py appends the message to its buffer before its first suspension: in order.
            await send()

    async def _after_queued(self) -> None:
        """Wait until what was queued so far has been sent (an ask goes after it)."""
        if self._queue:
            await self._send(_nothing)


async def _nothing() -> None:
    return None
