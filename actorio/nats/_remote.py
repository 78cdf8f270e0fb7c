"""`RemoteRef`: the address of an actor published on NATS, as an `ActorRef`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast, overload

from typing_extensions import TypeVar

from .. import NO_REPLY, ActorRef, Message, NoReply
from ..lowlevel import MailboxLike, Member, Payload, Request, check_accepted

if TYPE_CHECKING:
    from ._outbox import Outbox

__all__ = ["RemoteRef"]

M = TypeVar("M", bound=Message[Any])
N = TypeVar("N", bound=Message[Any])
R = TypeVar("R")
P = TypeVar("P", bound=Message[Any], contravariant=True, default=Message[Any])


class RemoteRef(ActorRef[P]):
    """The address of an actor published on NATS under a name (or of a remote sender).

    It is an `ActorRef`: code written against ``ActorRef[P]`` takes it as it is. What differs:

    - ``tell`` publishes the message's wire form (UTF-8 JSON) and returns once it is written to the
      connection (at most once: a tell to a name nobody publishes is lost, like a dead letter, and
      so is one the receiving node drops, its pending limits full). To a durable
      reference (``node.ref(..., durable=True)``), ``tell`` returns once the stream stored it, and
      is retried with the same message id (so stored once) until ``store_timeout``.
    - ``tell_nowait`` queues the publication; messages told through one node, by ``tell`` or
      ``tell_nowait``, leave in the order they were told. Publishing errors are logged, not raised.
      Through a `batched` reference, and to a remote sender that is an actor of another node
      (its address is under ``<prefix>.node.``), tells queued together leave as one NATS message
      (see docs/nats.md, "Batches").
    - ``ask`` is a NATS request; the reply is validated against the message's reply type. A
      handler's exception is raised as `RemoteError` (its type name and text); `InvalidPayload`,
      `UnhandledMessage` and `ActorStopped` come back as themselves; `ActorNotFound` if nobody
      publishes the name; `ReplyTooLarge` (a `RemoteError`) at once if the reply is larger than
      the server's ``max_payload``; `MailboxFull` at once if the receiving node dropped the request
      on arrival (its pending limits full); ``asyncio.TimeoutError`` after ``timeout`` (the node's
      ``ask_timeout`` when ``None``).
    - A message (or a reply) with a NaN or infinite float raises ``ValueError`` where it is
      encoded, before anything is sent: JSON has no such number (see docs/nats.md).
    - A message's ``sender`` travels as an address: a local actor's reference becomes an address on
      this node, so ``await message.sender.tell(...)`` in the remote handler reaches it. Telling
      a message that carries an ask (``forward``) makes the remote actor answer that ask.

    Two remote references are equal when they address the same subject through the same node.
    """

    __slots__ = ("_outbox", "_subject", "_name", "_durable", "_batch")

    def __init__(
        self,
        outbox: Outbox,
        subject: str,
        name: str,
        protocol: tuple[type, ...] | None,
        durable: bool = False,
        batch: bool = False,
    ) -> None:
        # No local mailbox: every method that would use it is overridden. It is None rather than
        # unset, so that ``local_ref == remote_ref`` is False rather than an AttributeError.
        super().__init__(cast(MailboxLike, None), protocol)
        self._outbox = outbox  # its node's: the node sends what this reference is told
        self._subject = subject
        self._name = name
        self._durable = durable
        self._batch = batch

    @property
    def identifier(self) -> str:
        """The published name (or, for a remote sender, its address)."""
        return self._name

    @property
    def subject(self) -> str:
        """The NATS subject messages to this actor are published on."""
        return self._subject

    @property
    def durable(self) -> bool:
        """Whether tells are stored by JetStream before ``tell`` returns."""
        return self._durable

    @property
    def batch(self) -> bool:
        """Whether tells queued together leave as one NATS message (see `batched`)."""
        return self._batch

    def batched(self) -> RemoteRef[P]:
        """A reference to the same actor through which tells queued together (a burst of
        ``tell_nowait``, or ``tell`` calls waiting behind one) leave as one NATS message, up to
        256 tells and 64 KiB: a remote tell then costs about half as much (see docs/nats.md,
        "Batches"). Order and validation are unchanged: the receiving node splits the batch and
        validates each message on its own.

        A pool (a name several processes publish) gets each batch whole at one process: its
        queue group shares NATS messages, not tells. Tells with headers (a sender, a trace
        context) leave alone. Every node of actorio 0.2.0 or later reads batches.
        Raises ``ValueError`` for a durable reference (its tells are stored one by one).
        """
        if self._durable:
            raise ValueError("a durable reference stores each tell on its own: it has no batched form")
        return RemoteRef(self._outbox, self._subject, self._name, self.message_types, batch=True)

    def narrow(self: ActorRef[M], message_type: type[Member[M, N]], /) -> ActorRef[N]:
        """A reference to the same remote actor that accepts only ``message_type``; see
        `ActorRef.narrow`."""
        narrowed = ActorRef.narrow(cast(Any, self), message_type)  # checks, as for a local ref
        assert isinstance(self, RemoteRef)
        return RemoteRef(
            self._outbox, self._subject, self._name, narrowed.message_types, self._durable, self._batch
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteRef) and other._outbox is self._outbox and other._subject == self._subject
        )

    def __hash__(self) -> int:
        return hash((id(self._outbox), self._subject))

    def tell_nowait(self, message: P, /) -> None:
        """Queue ``message`` for publication and return at once (see the class docstring)."""
        check_accepted(self, message)
        self._outbox.tell_nowait(self, message)

    async def tell(self, message: P, /, *, msg_id: str | None = None) -> None:
        """Publish ``message``; to a durable reference, return once the stream stored it.

        ``msg_id`` (durable only) names the message for the stream's duplicate window: a message
        stored again with the same id within the window is dropped, whoever stored the first
        (choose ids that no other publisher can guess). Without one, each call makes its
        own (its internal retries reuse it). Raises ``TypeError`` for a message outside the protocol
        or a sender that cannot travel (a plain `Reference`), `ActorNotFound` if no stream stores
        this name (durable, after ``store_timeout``), ``asyncio.TimeoutError`` if the stream did
        not confirm in time.
        """
        check_accepted(self, message)
        await self._outbox.tell(self, message, msg_id)

    async def forward(self, message: P, /) -> NoReply:
        """Tell ``message`` with its sender; if it carries an ask, the remote actor answers it."""
        await self.tell(message)
        return NO_REPLY

    @overload
    async def ask(
        self: ActorRef[Message[Any]], message: Message[Any], timeout: float | None = None
    ) -> Any: ...
    @overload
    async def ask(self: ActorRef[M], message: Request[M, R], timeout: float | None = None) -> R: ...
    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` as a NATS request and return the validated reply (see the class
        docstring for what is raised). ``message`` itself is not changed."""
        check_accepted(self, message)
        return await self._outbox.ask(self, message, timeout)

    async def tell_payload(self, payload: Payload, /) -> None:
        """Publish a raw wire payload as it is: the remote actor's protocol validates it there
        (an invalid one is a dead letter at the remote node)."""
        await self._outbox.tell_payload(self, payload)

    async def ask_payload(self, payload: Payload, /, timeout: float | None = None) -> Any:
        """Send a raw wire payload as a request; the reply is returned as JSON-decoded data.
        An invalid payload raises `InvalidPayload` from the remote actor's protocol."""
        return await self._outbox.ask_payload(self, payload, timeout)

    def __repr__(self) -> str:
        return f"<RemoteRef {self._name} at {self._subject}{', batched' if self._batch else ''}>"
