"""Publications: how what NATS brings to a published name reaches the local actor.

Owns `Receiver`: a message received from NATS is validated with the actor's protocol (its
``Actorio-Sender`` resolved into a `RemoteRef`), then told, or queued as an ask whose reply (or
error) is sent back to the asker; an invalid one is refused (an error reply, or a dead letter).
Also waiting until an actor has handled what it was told (`wait_handled`, through
`actorio.lowlevel.barrier`) or until its incarnation has ended (`Receiver.ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import Actor, InvalidPayload, Message, dead_letters
from ..lowlevel import ask_message, barrier, task_of
from ._addresses import sender_of
from ._codec import ERROR, MSG_ID, OK, encode_error, reply_codec, timeout_of

if TYPE_CHECKING:
    from ._outbox import Outbox

__all__ = ["Receiver", "queue_ask", "wait_handled"]


class Receiver:
    """How a node's published actors receive from NATS: core messages (`receive`), and the
    stored messages a durable mailbox's pump hands over (`validate`, `refuse`, `answer`)."""

    def __init__(
        self, nc: Client, *, spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], outbox: Outbox
    ) -> None:
        self._nc = nc
        self._spawn = spawn
        self._outbox = outbox
        self._ends: weakref.WeakKeyDictionary[Actor[Any], asyncio.Future[None]] = weakref.WeakKeyDictionary()

    def validate(self, actor: Actor[Any], data: bytes, headers: Mapping[str, str] | None) -> Message[Any]:
        """The typed message of a payload, with its sender; raises `InvalidPayload`."""
        message: Message[Any] = type(actor).protocol.validate(data)
        sender = sender_of(self._outbox, headers)
        if sender is not None:
            message = message.model_copy(update={"sender": sender})
        return message

    async def receive(self, actor: Actor[Any], msg: Msg) -> None:
        """A message from core NATS: validated, then told (or, for a request, asked) to ``actor``."""
        if msg.reply and MSG_ID in (msg.headers or {}):
            # A durable tell (it asks for a stream's acknowledgement) to a name that is not durable:
            # refused, not handled, so that the sender's error does not hide a delivery.
            refusal = ValueError(
                f"{actor.identifier} is not published with a durable mailbox: "
                "send to it through node.ref(name) without durable=True"
            )
            await self._nc.publish(msg.reply, encode_error(refusal, actor.identifier), headers=ERROR)
            return
        try:
            message = self.validate(actor, msg.data, msg.headers)
        except InvalidPayload as error:
            await self.refuse(actor, error, msg.reply or None, msg.data)
            return
        if not msg.reply:
            await actor.reference.tell(message)
            return
        _, future = await queue_ask(actor, message)
        timeout = timeout_of(msg.headers)
        self._spawn(self.answer(actor, message, future, msg.reply, timeout))

    async def refuse(self, actor: Actor[Any], error: InvalidPayload, reply: str | None, data: bytes) -> None:
        """An invalid message: the error goes to ``reply`` (an ask), or it is a dead letter."""
        if reply:
            await self._nc.publish(reply, encode_error(error, actor.identifier), headers=ERROR)
        else:
            dead_letters.record(data, actor.identifier, "invalid", error)

    async def answer(
        self,
        actor: Actor[Any],
        message: Message[Any],
        future: asyncio.Future[Any],
        reply: str,
        timeout: float | None,
    ) -> bool:
        """Wait for the reply to an ask and send it to ``reply``; False if the ask was not
        answered (the actor stopped first, or ``timeout`` passed)."""
        try:
            result = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return False  # the asker gave up too
        except Exception as error:  # the handler's error, or ActorStopped
            body, headers = encode_error(error, actor.identifier), ERROR
        else:
            try:
                body, headers = reply_codec(type(message)).encode(result), OK
            except Exception as error:  # not of the reply type, or not JSON: the asker is told
                body, headers = encode_error(error, actor.identifier), ERROR
        with contextlib.suppress(nats.errors.ConnectionClosedError):
            await self._nc.publish(reply, body, headers=headers)
        return True

    def ended(self, actor: Actor[Any]) -> asyncio.Future[None]:
        """A future done when this incarnation of the actor has ended (one per incarnation)."""
        ended = self._ends.get(actor)
        if ended is None:
            ended = self._ends[actor] = asyncio.get_running_loop().create_future()
            task = task_of(actor)
            if task is None or task.done():
                ended.set_result(None)
            else:
                done = ended

                def end(_: object) -> None:
                    if not done.done():
                        done.set_result(None)

                task.add_done_callback(end)
        return ended


async def queue_ask(actor: Actor[Any], message: Message[Any]) -> tuple[Message[Any], asyncio.Future[Any]]:
    """Queue ``message`` as an ask, now, in arrival order: the message queued (it carries the ask)
    and the future that gets the reply."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    asking = ask_message(message, future)
    await actor.reference.tell(asking)
    return asking, future


async def wait_handled(actor: Actor[Any], stopped: asyncio.Future[None]) -> bool:
    """Wait until the actor has handled what it was told so far; False if it stopped first."""
    handled = barrier(actor)
    await asyncio.wait([cast("asyncio.Future[Any]", handled), stopped], return_when=asyncio.FIRST_COMPLETED)
    return handled.done() and handled.result()
