"""Publications: a local actor published under a name, and how what NATS brings reaches it.

Owns:

- `Publication`: a published actor; it ends by `Publication.unpublish`, or by itself through
  death watch (`PublicationEnd`) when the actor stops for good. How it receives is its `Inlet`:
  a core subscription (`CoreSubscription`, here) or a durable mailbox's pump (``_durable``);
- `CoreSubscription`: a core publication's subscription, in the queue group of its name;
- `Receiver`: a message received from NATS is validated with the actor's protocol (its reply
  subject and ``Actorio-Sender`` checked by the node's `Destinations` first, the sender resolved
  into a `RemoteRef`), then told, or queued as an ask whose reply (or error) is sent back to the
  asker; an invalid one is refused (an error reply, or a dead letter). A reply larger than the
  server's ``max_payload`` is replaced by a small `ReplyTooLarge` error; a message the client
  dropped on arrival (its pending limits full: a slow consumer) is a dead letter ``overflow``;
- waiting until an actor has handled what it was told (`wait_handled`, through
  `actorio.lowlevel.barrier`), or until its incarnation has ended (`Receiver.ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import (
    DEFAULT_SUB_PENDING_BYTES_LIMIT,
    DEFAULT_SUB_PENDING_MSGS_LIMIT,
    Subscription,
)

from .. import Actor, ActorRef, BaseRef, InvalidPayload, MailboxFull, Message, PayloadError, dead_letters
from ..lowlevel import (
    LogLimit,
    Mailbox,
    ask_message,
    barrier,
    extracted,
    mailbox_of,
    propagating,
    report_transport,
    task_of,
    unwatch,
    watch,
)
from ._addresses import Destinations, sender_of
from ._batch import BATCH, pieces, tells_of
from ._codec import (
    ANSWERS,
    ERROR,
    MSG_ID,
    OK,
    SENDER,
    encode_error,
    full_error,
    message_validator,
    reply_codec,
    timeout_of,
    too_large_error,
    wire_size,
)
from ._connection import count_whole_messages, synced

if TYPE_CHECKING:
    from ._durable import Durable
    from ._node import Node
    from ._outbox import Outbox

__all__ = [
    "DEFAULT_PENDING_LIMITS",
    "CoreSubscription",
    "Inlet",
    "Publication",
    "Receiver",
    "Spawn",
    "check_pending_limits",
    "queue_ask",
    "wait_handled",
]

_logger = logging.getLogger("actorio.nats")

Spawn = Callable[[Awaitable[Any]], "asyncio.Task[Any]"]
"""The node's way to start a task it tracks (awaited, then cancelled, when it closes)."""

DEFAULT_PENDING_LIMITS = (DEFAULT_SUB_PENDING_MSGS_LIMIT, DEFAULT_SUB_PENDING_BYTES_LIMIT)
"""A core publication's pending limits unless given: nats-py's (524,288 messages, 128 MiB)."""


def check_pending_limits(limits: object) -> tuple[int, int]:
    """``(messages, bytes)``, each a positive integer (``ValueError`` otherwise)."""
    if isinstance(limits, tuple) and len(cast("tuple[object, ...]", limits)) == 2:
        messages, size = cast("tuple[object, object]", limits)
        if all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (messages, size)):
            return cast("tuple[int, int]", limits)
    raise ValueError(f"pending_limits is (messages, bytes), two positive integers, not {limits!r}")


class Inlet(Protocol):
    """How a publication receives: a core subscription, or a durable mailbox's pump."""

    async def open(self) -> None:
        """Start receiving; return once a message sent from now on reaches the actor."""

    async def close(self, timeout: float) -> None:
        """Stop receiving (see `Publication.unpublish`), within about ``timeout`` seconds."""


class Publication:
    """A local actor published under a name; `unpublish` ends it (the actor keeps running).

    It ends by itself when the actor stops for good (death watch): the process then leaves the
    pool, and messages to the name go to the other processes that publish it. A supervised child
    published through its reference stays published across its restarts: each message goes to
    the incarnation running then.
    """

    def __init__(
        self,
        node: Node,
        name: str,
        subject: str,
        mailbox: Mailbox,
        durable: Durable | None,
        inlet: Inlet,
        *,
        spawn: Spawn,
        leave: Callable[[Publication], None],
    ) -> None:
        self.node = node
        self.name = name
        self.durable = durable
        self.subject = subject
        self._mailbox = mailbox
        self._reference: ActorRef[Any] = mailbox.actor.reference
        self._inlet = inlet
        self._leave = leave  # takes it out of its node's publications
        self._closing = False
        self._left = False
        self._watcher = PublicationEnd(self, spawn)
        watch(self._reference, self._watcher)

    @property
    def actor(self) -> Actor[Any]:
        """The published actor (for a supervised child, its incarnation running now)."""
        return self._mailbox.actor

    def closing(self) -> bool:
        """True from the start of `unpublish` (read again after each await: it changes meanwhile)."""
        return self._closing

    @property
    def active(self) -> bool:
        """True until `unpublish` (or the actor's stop) has taken this process out of the name's
        subscribers."""
        return not self._left

    async def unpublish(self, timeout: float = 10.0) -> None:
        """Stop receiving: unsubscribe (messages already received are still delivered to the actor),
        or for a durable actor, finish and acknowledge the message being handled, give back
        (negative acknowledgement) the prefetched ones, and stop fetching. Idempotent."""
        if self._closing:
            return
        self._closing = True
        unwatch(self._reference, self._watcher)
        self._leave(self)
        await self._inlet.close(timeout)
        self._left = True

    def __repr__(self) -> str:
        kind = "durable " if self.durable else ""
        return f"<Publication {kind}{self.name} of {self.actor!r}>"


class PublicationEnd(BaseRef):
    """Death watch on a published actor: its publication ends when the actor stops for good."""

    __slots__ = ("publication", "spawn")

    def __init__(self, publication: Publication, spawn: Spawn) -> None:
        self.publication = publication
        self.spawn = spawn

    @property
    def identifier(self) -> str:
        return f"publication-{self.publication.name}"

    def tell_nowait(self, message: Any, /) -> None:
        if not self.publication.closing():
            self.spawn(self.publication.unpublish())


class CoreSubscription:
    """A core publication's inlet: a subscription in the queue group of its name (a pool)."""

    def __init__(
        self,
        nc: Client,
        receiver: Receiver,
        *,
        subject: str,
        mailbox: Mailbox,
        pending_limits: tuple[int, int] = DEFAULT_PENDING_LIMITS,
    ) -> None:
        self._nc = nc
        self._receiver = receiver
        self._subject = subject
        self._mailbox = mailbox
        self._pending_limits = pending_limits
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        """Subscribe; return once the server has the subscription (``PermissionError`` if the
        server refused it)."""

        async def on_message(msg: Msg) -> None:
            await self._receiver.receive(self._mailbox.actor, msg)

        messages, size = self._pending_limits
        # nats-py leaves a parameter of subscribe() unannotated (``future: Future``).
        self._subscription = await self._nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
            self._subject,
            queue=self._subject,
            cb=on_message,
            pending_msgs_limit=messages,
            pending_bytes_limit=size,
        )
        count_whole_messages(self._subscription)
        self._receiver.track(self._subscription, self._mailbox, self._pending_limits)
        await synced(self._nc, self._subscription)  # not flush(): its PING may precede the SUB

    async def close(self, timeout: float) -> None:
        """Unsubscribe (draining), then wait until the actor has handled what was received."""
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        self._receiver.untrack(subscription)
        if not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                # drain() is not annotated in nats-py.
                await asyncio.wait_for(cast(Any, subscription).drain(), timeout)
        # What the subscription had received is in the mailbox; wait (within the timeout) until
        # the actor has handled it, so that a graceful exit loses none of it.
        actor = self._mailbox.actor
        if not self._nc.is_closed and actor.running:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wait_handled(actor, self._receiver.ended(actor)), timeout)


class Receiver:
    """How a node's published actors receive from NATS: core messages (`receive`), and the
    stored messages a durable mailbox's pump hands over (`validate`, `refuse`, `answer`).

    Everything it publishes on behalf of a message goes through `send`, to a subject that the
    node's `Destinations` allows: a message whose reply subject (or ``Actorio-Sender``) it refuses
    is refused before any handler runs.
    """

    def __init__(
        self,
        nc: Client,
        *,
        spawn: Spawn,
        outbox: Outbox,
        destinations: Destinations,
        ask_timeout: float = 30.0,
        debug_errors: bool = False,
    ) -> None:
        self._nc = nc
        self._spawn = spawn
        self._outbox = outbox
        self.destinations = destinations
        self._ask_timeout = ask_timeout
        self._debug_errors = debug_errors
        self._ends: weakref.WeakKeyDictionary[Actor[Any], asyncio.Future[None]] = weakref.WeakKeyDictionary()
        self._subscriptions: weakref.WeakKeyDictionary[Subscription, tuple[Mailbox, tuple[int, int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._reply_failures = LogLimit(_logger)
        self._overflows = LogLimit(_logger, limit=1, window=10.0)  # one line per burst

    def validate(
        self, actor: Actor[Any], data: bytes, headers: Mapping[str, str] | None, reply: str | None = None
    ) -> Message[Any]:
        """The typed message of a payload, with its sender. Raises `InvalidPayload` for an invalid
        payload, and, before reading the payload, for a ``reply`` subject or an ``Actorio-Sender``
        header that the node's `Destinations` refuses."""
        address = headers.get(SENDER) if headers else None
        if headers and BATCH in headers:  # here only from a stream: see _receive_batch for core
            why = (
                "a batch of tells was stored whole: tell a durable name through node.ref(name, durable=True)"
            )
            raise _invalid(actor, PayloadError((), why, "invalid_batch"))
        if reply is not None or address is not None:
            for subject, location in ((reply, ("reply",)), (address, ("headers", SENDER))):
                problem = None if subject is None else self.destinations.problem(subject, location)
                if problem is not None:
                    raise _invalid(actor, problem)
        message = message_validator(type(actor)).validate(data)
        if address is not None:
            message = message.model_copy(update={"sender": sender_of(self._outbox, headers)})
        return message

    async def receive(self, actor: Actor[Any], msg: Msg, *, wait_for_room: bool = True) -> None:
        """A message from core NATS: validated, then told (or, for a request, asked) to ``actor``.

        If the actor's mailbox is bounded and full, the subscription waits for room
        (backpressure), or, ``wait_for_room`` False (a subscription that serves many actors,
        which one full mailbox must not hold up), the message is dropped as when its pending
        limits are full: an ask is answered `MailboxFull`, a tell is a dead letter ``overflow``."""
        reply = msg.reply or None
        headers = msg.headers
        if headers and BATCH in headers:
            with extracted(None):  # its pieces carry no trace context: each starts a new trace
                await self._receive_batch(actor, msg.data, headers, reply, wait_for_room)
            return
        report_transport("nats", "received", "tell" if reply is None else "ask")
        if reply is not None and headers and MSG_ID in headers and self.destinations.refusal(reply) is None:
            # A durable tell (it asks for a stream's acknowledgement) to a name that is not durable:
            # refused, not handled, so that the sender's error does not hide a delivery.
            refusal = ValueError(
                f"{actor.identifier} is not published with a durable mailbox: "
                "send to it through node.ref(name) without durable=True"
            )
            await self.send(actor.identifier, reply, self._error_body(refusal, actor), ERROR)
            return
        try:
            message = self.validate(actor, msg.data, headers, reply)
        except InvalidPayload as error:
            await self.refuse(actor, error, reply, msg.data)
            return
        if reply is None and not headers and not propagating():
            # No propagator: extracted() would be an empty block.
            await self._tell(actor, message, msg.data, wait_for_room)
            return
        with extracted(headers):  # the sender's trace context, if a tracer propagates one
            if reply is None:
                await self._tell(actor, message, msg.data, wait_for_room)
                return
            if wait_for_room:
                _, future = await queue_ask(actor, message)
            else:
                future = asyncio.get_running_loop().create_future()
                try:
                    actor.reference.tell_nowait(ask_message(message, future))
                except MailboxFull as full:
                    self._overflowed(actor, None)
                    await self.send(actor.identifier, reply, full_error(full.capacity), ERROR)
                    return
        timeout = timeout_of(headers, self._ask_timeout)
        self._spawn(self.answer(actor, message, future, reply, timeout))

    async def _tell(self, actor: Actor[Any], message: Message[Any], data: bytes, wait_for_room: bool) -> None:
        """Tell ``message`` (``data`` on the wire) to ``actor`` as `ActorRef.tell` does, without its
        coroutine unless the mailbox is full: then once there is room (``wait_for_room``), or
        never (a dead letter ``overflow``)."""
        reference = actor.reference
        try:
            reference.tell_nowait(message)
        except MailboxFull:
            if wait_for_room:
                await reference.tell(message)
            else:
                self._overflowed(actor, data)

    def _overflowed(self, actor: Actor[Any], data: bytes | None) -> None:
        """A message dropped, ``actor``'s mailbox full: reported, and (a tell's ``data``) a dead letter."""
        report_transport("nats", "error", "overflow")
        if data is not None:
            dead_letters.record(data, actor.identifier, "overflow")
        self._overflows.log(
            logging.WARNING,
            "%s: messages are dropped on arrival: its mailbox is full (a slow consumer); they are "
            "dead letters 'overflow', and asks are answered MailboxFull",
            actor.identifier,
        )

    async def overflow(self, actor: Actor[Any], msg: Msg) -> None:
        """``msg`` for ``actor`` dropped unread (the node holds too much for it already): each tell
        (of a batch, each piece) a dead letter ``overflow``, an ask answered `MailboxFull` if the
        node serves its reply subject; reported as `_overflowed` does."""
        tells = tells_of(msg.data, msg.headers)
        if not msg.reply or len(tells) > 1:  # a tell, or a batch (of two tells or more)
            for data in tells:
                self._overflowed(actor, data)
            return
        self._overflowed(actor, None)
        mailbox = mailbox_of(actor)
        await self.send(actor.identifier, msg.reply, full_error(mailbox.capacity if mailbox else 0), ERROR)

    async def _receive_batch(
        self,
        actor: Actor[Any],
        data: bytes,
        headers: Mapping[str, str],
        reply: str | None,
        wait_for_room: bool,
    ) -> None:
        """A batch of tells (``_batch``): each piece validated and told in order, as a tell without
        headers is; an invalid piece is a dead letter ``invalid`` and the others are handled. A
        batch that is malformed, or sent as a request, is refused whole. Cancelled while waiting
        for room (the node closing), the pieces not told yet are dead letters ``stopped``."""
        found = pieces(data, headers)
        if reply is not None and not isinstance(found, PayloadError):
            found = PayloadError((), "a batch of tells cannot be sent as a request", "invalid_batch")
        if isinstance(found, PayloadError):
            report_transport("nats", "received", "tell")
            await self.refuse(actor, _invalid(actor, found), reply, data)
            return
        validate = message_validator(type(actor)).validate
        for index, piece in enumerate(found):
            report_transport("nats", "received", "tell")
            try:
                message = validate(piece)
            except InvalidPayload as error:
                await self.refuse(actor, error, None, piece)
                continue
            try:
                await self._tell(actor, message, piece, wait_for_room)
            except asyncio.CancelledError:  # waiting for room, the node closing: the rest are lost
                for lost in found[index:]:
                    dead_letters.record(lost, actor.identifier, "stopped")
                raise

    async def refuse(
        self,
        actor: Actor[Any],
        error: InvalidPayload,
        reply: str | None,
        data: bytes,
        answers: str | None = None,
    ) -> None:
        """An invalid message: the error goes to ``reply`` (an ask whose reply subject the node
        serves), or it is a dead letter (``invalid``: a tell, or a refused reply subject).
        ``answers``: where a stored ask is stored (see `send`)."""
        report_transport("nats", "error", "invalid")
        if reply is not None and self.destinations.refusal(reply) is None:
            await self.send(actor.identifier, reply, self._error_body(error, actor), ERROR, answers)
        else:
            dead_letters.record(data, actor.identifier, "invalid", error)

    async def answer(
        self,
        actor: Actor[Any],
        message: Message[Any],
        future: asyncio.Future[Any],
        reply: str,
        timeout: float | None,
        answers: str | None = None,
    ) -> bool:
        """Wait for the reply to an ask and send it (or the error it raised, `ActorStopped`
        included) to ``reply``; False if ``timeout`` passed first (the asker gave up too).
        ``answers``: where a stored ask is stored (see `send`)."""
        # A timer that cancels the future, as asyncio.wait_for would, but without wait_for's own
        # future and callback: the reply leaves one turn of the event loop sooner.
        loop = asyncio.get_running_loop()
        expiry = None if timeout is None or future.done() else loop.call_later(timeout, future.cancel)
        try:
            result = await future
        except asyncio.CancelledError:
            if expiry is not None and loop.time() >= expiry.when():
                return False  # the asker gave up too
            raise  # this task was cancelled (the node is closing)
        except Exception as error:  # the handler's error, or ActorStopped
            body, headers = self._error_body(error, actor), ERROR
        else:
            try:
                body, headers = reply_codec(type(message)).encode(result), OK
            except Exception as error:  # not of the reply type, or not JSON: the asker is told
                body, headers = self._error_body(error, actor), ERROR
        finally:
            if expiry is not None:
                expiry.cancel()
        await self.send(actor.identifier, reply, body, headers, answers)
        return True

    async def send(
        self, actor: str, subject: str, body: bytes, headers: dict[str, str], answers: str | None = None
    ) -> None:
        """Publish a reply of ``actor`` to ``subject``, if the node's `Destinations` allows it (the
        callers checked it on arrival). A reply larger than the server's ``max_payload`` becomes a
        `ReplyTooLarge` error; failures are logged on ``actorio.nats`` within a limit. The reply
        to a stored ask carries ``answers``, where it was stored (`answered`: JetStream's metadata,
        never a header of the message): its asker takes no other (`StoredAsk`)."""
        if self.destinations.refusal(subject) is not None:
            return
        headers = _answering(headers, answers)
        try:
            await self._publish_reply(actor, subject, body, headers)
        except nats.errors.MaxPayloadError:  # (the node's client counts the headers too)
            limit = self._nc.max_payload
            size = wire_size(body, headers)
            self._reply_failures.log(
                logging.WARNING,
                "%s: a reply of %d bytes is larger than the server's max_payload (%d bytes): "
                "ReplyTooLarge was sent instead",
                actor,
                size,
                limit,
            )
            report_transport("nats", "error", "reply_too_large")
            await self._publish_reply(
                actor, subject, too_large_error(size, limit), _answering(ERROR, answers)
            )

    async def send_error(
        self, actor: str, reply: str | None, error: BaseException, answers: str | None = None
    ) -> None:
        """Answer an ask of ``actor`` with ``error`` (what its asker raises, as `RemoteError`),
        if ``reply`` is a subject the node's `Destinations` allows; nothing for a tell (None).
        ``answers``: where a stored ask is stored (see `send`)."""
        if reply:
            body = encode_error(error, actor, debug=self._debug_errors)
            await self.send(actor, reply, body, ERROR, answers)

    async def _publish_reply(self, actor: str, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Publish a reply; a failure other than its size is logged within a limit."""
        try:
            await self._nc.publish(subject, body, headers=headers)
        except nats.errors.MaxPayloadError:
            raise  # too large: the caller sends ReplyTooLarge instead
        except nats.errors.ConnectionClosedError:
            pass  # closing: the asker's own node tells it
        except nats.errors.Error as error:
            report_transport("nats", "error", "reply_failed")
            self._reply_failures.log(logging.WARNING, "%s: a reply could not be sent: %r", actor, error)

    def _error_body(self, error: BaseException, actor: Actor[Any]) -> bytes:
        return encode_error(error, actor.identifier, debug=self._debug_errors)

    # -- overflow -----------------------------------------------------------------------------

    def track(self, subscription: Subscription, mailbox: Mailbox, limits: tuple[int, int]) -> None:
        """Name ``subscription``'s messages after ``mailbox``'s actor when the client drops some."""
        self._subscriptions[subscription] = (mailbox, limits)

    def untrack(self, subscription: Subscription) -> None:
        """Stop tracking ``subscription`` (unsubscribed)."""
        self._subscriptions.pop(subscription, None)

    async def dropped(self, error: nats.errors.SlowConsumerError) -> None:
        """A message the client dropped on arrival, its subscription's pending limits being full
        (the actor is slower than what arrives: a slow consumer). It is a dead letter
        ``overflow``, reported by a WARNING on ``actorio.nats`` within a limit; a dropped request
        is answered at once with `MailboxFull`, if the node serves its reply subject."""
        tracked = self._subscriptions.get(error.sub)
        if tracked is not None:
            mailbox, (messages, size) = tracked
            recipient = mailbox.actor.identifier
            limits = f"its publication's pending_limits ({messages} messages, {size} bytes) are full"
        else:  # one of the node's own subscriptions: sender addresses, durable replies
            recipient, messages = error.subject, 0
            limits = "the subscription's pending limits are full"
        dead_letters.record(f"a message to {error.subject}, dropped unread", recipient, "overflow")
        report_transport("nats", "error", "overflow")
        self._overflows.log(
            logging.WARNING,
            "%s: messages are dropped on arrival: %s (a slow consumer); they are dead letters 'overflow'",
            recipient,
            limits,
        )
        reply = error.reply or None
        if reply is not None and self.destinations.refusal(reply) is None:
            await self.send(recipient, reply, full_error(messages), ERROR)

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


def _answering(headers: dict[str, str], answers: str | None) -> dict[str, str]:
    """``headers``, with `ANSWERS` if the reply is to a stored ask (``answers``: where it is)."""
    return headers if answers is None else {**headers, ANSWERS: answers}


def _invalid(actor: Actor[Any], problem: PayloadError) -> InvalidPayload:
    """``problem`` as the `InvalidPayload` of ``actor``'s protocol."""
    protocol = type(actor).protocol
    return InvalidPayload(protocol.name, (problem,), protocol.wire_names)


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
