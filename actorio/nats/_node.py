"""`Node`: one process's connection to NATS; it publishes local actors and makes remote references.

Subjects (``prefix`` is ``actorio`` unless given):

- ``<prefix>.actor.<name>``: a published actor. Every process that publishes ``name`` subscribes
  in the queue group ``<prefix>.actor.<name>``, so each message goes to one of them: a pool.
- ``<prefix>.node.<node id>.<token>``: a local actor that travelled as a message's sender.
- ``<prefix>.reply.<node id>.<token>``: the reply to an ask sent to a durable actor.

A durable actor's subject is captured by a JetStream stream (work-queue retention) with one durable
pull consumer, ``actorio``, shared by every process that publishes the name.
"""

# pyright: reportPrivateUsage=false
# The node, its publications and its remote references are one package: they share private state.
# pyright: reportUnknownMemberType=false
# nats-py leaves a few parameters unannotated (``**params``, ``Future`` without its argument).

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast, overload

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from .. import Actor, ActorRef, ActorStopped, BaseRef, InvalidPayload, Message
from ..lowlevel import (
    Mailbox,
    is_actor_class,
    is_message_class,
    mailbox_of,
    message_types_of,
    unwatch,
    watch,
)
from ._addresses import Addresses
from ._codec import (
    REPLY,
    TIMEOUT,
)
from ._durable import Durable, Streams
from ._errors import ActorNotFound, NodeUnreachable
from ._outbox import Outbox
from ._publication import Receiver, queue_ask, wait_handled
from ._remote import RemoteRef

__all__ = ["Node", "Publication"]

_logger = logging.getLogger("actorio.nats")

Q = TypeVar("Q", bound=Message[Any])

_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def check_name(name: object) -> str:
    """A published name: dot-separated tokens of letters, digits, ``_`` and ``-`` (``ValueError``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid actor name {name!r}: use dot-separated tokens of letters, digits, '_' and '-'"
        )
    return name


def _protocol_members(protocol: Any) -> tuple[type, ...] | None:
    """The message classes of ``ref``'s second argument: an actor class, ``ActorRef[A | B]``, a
    message class, or ``None`` (any message)."""
    if protocol is None:
        return None
    if is_actor_class(protocol):
        return message_types_of(protocol) or None
    if is_message_class(protocol):
        return (protocol,)
    args: tuple[Any, ...] = getattr(protocol, "__args__", ())
    origin: object = getattr(protocol, "__origin__", None)
    if isinstance(origin, type) and issubclass(origin, ActorRef) and args:
        members: tuple[Any, ...] = getattr(args[0], "__args__", (args[0],))
        if all(is_message_class(member) for member in members):
            return members
    raise TypeError(f"ref() takes an actor class, a message class or ActorRef[<messages>], not {protocol!r}")


class Publication:
    """A local actor published under a name; `unpublish` ends it (the actor keeps running).

    It ends by itself when the actor stops for good (death watch): the process then leaves the
    pool, and messages to the name go to the other processes that publish it. A supervised child
    published through its reference stays published across its restarts: each message goes to
    the incarnation running then.
    """

    def __init__(
        self, node: Node, name: str, mailbox: Mailbox, reference: ActorRef[Any], durable: Durable | None
    ) -> None:
        self.node = node
        self.name = name
        self.durable = durable
        self.subject = node._actor_subject(name)
        self._mailbox = mailbox
        self._reference = reference
        self._subscription: Subscription | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._busy = False
        self._closing = False
        self._left = False
        self._watcher = _PublicationEnd(self)
        watch(reference, self._watcher)

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
        self.node._publications.discard(self)
        subscription, self._subscription = self._subscription, None
        if subscription is not None and not self.node._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                # drain() is not annotated in nats-py.
                await asyncio.wait_for(cast(Any, subscription).drain(), timeout)
        pump = self._pump
        if pump is not None and not pump.done():
            if not self._busy:
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), timeout)
        pull, self._pull = self._pull, None
        if pull is not None and not self.node._nc.is_closed:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await asyncio.wait_for(pull.unsubscribe(), timeout)
        elif subscription is not None and not self.node._nc.is_closed:
            # Core: what the subscription had received is in the mailbox; wait (within the
            # timeout) until the actor has handled it, so that a graceful exit loses none of it.
            actor = self.actor
            if actor.running:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wait_handled(actor, self.node._receiver.ended(actor)), timeout)
        self._left = True

    def __repr__(self) -> str:
        kind = "durable " if self.durable else ""
        return f"<Publication {kind}{self.name} of {self.actor!r}>"


def _withdraw(publication: Publication, message: Message[Any]) -> None:
    """Take a stored message back out of the mailbox, if it is still queued there, before it is
    given back to the stream: a supervised child's restart keeps its mailbox, and the message
    would otherwise be handled twice."""
    publication._mailbox.withdraw(message)


class _PublicationEnd(BaseRef):
    """Death watch on a published actor: its publication ends when the actor stops for good."""

    __slots__ = ("publication",)

    def __init__(self, publication: Publication) -> None:
        self.publication = publication

    @property
    def identifier(self) -> str:
        return f"publication-{self.publication.name}"

    def tell_nowait(self, message: Any, /) -> None:
        if not self.publication._closing:
            self.publication.node._spawn(self.publication.unpublish())


class Node:
    """One process's connection to NATS: publishes local actors, makes references to remote ones.

    ``node = await Node.connect("nats://host:4222")``, then ``await node.publish("greeter", actor)``
    in one process and ``node.ref("greeter", Greeter)`` in another. ``async with node:`` (or
    ``await node.close()``) drains it on exit.

    Delivery, for an actor published without ``durable`` (core NATS):

    - at most once: a message is handled once, or lost if the process that received it dies (or if
      nobody publishes the name: a tell is then dropped, an ask raises `ActorNotFound`);
    - per sender FIFO: messages told through one node to one name arrive in order at the process
      that handles them (across a pool, each process sees its share in order);
    - pools: every process publishing a name is in one queue group; each message goes to one of
      them, chosen by the server. No process failing, every message is handled exactly once.

    With ``durable``: see `Durable` and `publish`.

    The connection reconnects forever (every ``reconnect_wait`` seconds) when the server goes away;
    published actors are subscribed again on reconnection. Messages told while disconnected are
    buffered by the client and sent on reconnection.
    """

    def __init__(
        self, nc: Client, *, url: str, prefix: str, ask_timeout: float, store_timeout: float
    ) -> None:
        self._nc = nc
        self.url = url
        self.prefix = prefix
        self.ask_timeout = ask_timeout
        self.store_timeout = store_timeout
        self.node_id = uuid.uuid4().hex[:16]
        self._streams = Streams(nc.jetstream(), url=url, prefix=prefix, store_timeout=store_timeout)
        self._publications: set[Publication] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._addresses = Addresses(nc, prefix=prefix, node_id=self.node_id)
        self._outbox = Outbox(
            nc, spawn=self._spawn, addresses=self._addresses, streams=self._streams, request=self._request
        )
        self._receiver = Receiver(nc, spawn=self._spawn, outbox=self._outbox)
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._closed = False
        self.reconnections = 0

    # -- connecting ---------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str = "nats://127.0.0.1:4222",
        *,
        name: str | None = None,
        prefix: str = "actorio",
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
        ask_timeout: float = 30.0,
        store_timeout: float = 10.0,
    ) -> Node:
        """Connect to the NATS server at ``url`` (several: comma-separated).

        Raises `NodeUnreachable` if no server answers within ``connect_timeout`` seconds. Once
        connected, the node reconnects forever, every ``reconnect_wait`` seconds. ``ask_timeout``
        bounds asks made with ``timeout=None``; ``store_timeout`` bounds a durable tell's retries.
        """
        check_name(prefix)
        last_error: list[BaseException] = []

        async def on_error(error: Exception) -> None:
            last_error[:] = [error]
            _logger.debug("NATS connection error: %r", error)

        nc = Client()
        node: Node | None = None

        async def on_reconnected() -> None:
            if node is not None:
                node.reconnections += 1
            _logger.info("reconnected to %s", nc.connected_url)

        async def on_disconnected() -> None:
            _logger.info("disconnected from NATS")

        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=url.split(","),
                    name=name,
                    connect_timeout=max(1, round(connect_timeout)),
                    reconnect_time_wait=cast(int, reconnect_wait),  # a float works; the stub says int
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                    reconnected_cb=on_reconnected,
                    disconnected_cb=on_disconnected,
                ),
                connect_timeout,
            )
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as error:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            reason = repr(last_error[0]) if last_error else repr(error)
            raise NodeUnreachable(url, f"no server answered within {connect_timeout} s ({reason})") from None
        node = cls(nc, url=url, prefix=prefix, ask_timeout=ask_timeout, store_timeout=store_timeout)
        await nc.subscribe(f"{prefix}.node.{node.node_id}.*", cb=node._on_export)
        await nc.subscribe(f"{prefix}.reply.{node.node_id}.*", cb=node._on_reply)
        await nc.flush()
        return node

    @property
    def connected(self) -> bool:
        """True while the connection to the server is up."""
        return self._nc.is_connected

    @property
    def client(self) -> Client:
        """The underlying nats-py client."""
        return self._nc

    def _actor_subject(self, name: str) -> str:
        return f"{self.prefix}.actor.{name}"

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _logger.error("actorio.nats task failed", exc_info=task.exception())

    # -- publishing ---------------------------------------------------------------------------

    async def publish(
        self, name: str, actor: Actor[Any] | ActorRef[Any], *, durable: Durable | bool = False
    ) -> Publication:
        """Publish ``actor`` (an actor, or the reference of a local one, such as a supervised
        child's) under ``name``: messages to ``node.ref(name, ...)`` from any process reach it.
        Starts the actor if it is not started. Returns once the server has the
        subscription (or, durable, the stream and consumer): a message sent after that reaches it.

        Messages are validated with the actor's protocol (``type(actor).protocol``); an invalid
        one never reaches a handler: an ask gets `InvalidPayload` back, a tell is a dead letter
        (logged on ``actorio.dead_letters``). Several processes (or actors) publishing one name
        share its messages (a queue group): each message goes to one of them.

        ``durable`` (``True`` or a `Durable`) gives the actor a durable mailbox, a JetStream stream:

        - at least once: a message is acknowledged only after its handler finished (an ask: after
          its reply was sent); if the process dies or the actor stops first, the message is
          delivered again, to this name's next process, ``redelivery_delay`` seconds after it
          was delivered (at once if the actor stopped while this process kept running);
        - a handler that raises on a told message stops the actor (as for any actor), and the
          message is delivered again elsewhere; an ask's handler that raises answers the asker
          with the error, and the message is acknowledged;
        - duplicates: a message stored twice with the same message id within ``dedupe_window`` is
          stored once; but a redelivered message is handled again (handlers should be idempotent);
        - order: messages are delivered in stream order, but a redelivered one comes after later
          ones unless ``ordered``.

        The processes of a durable pool should use the same `Durable` settings: the last one to
        publish sets them for all (the consumer is updated, and a warning logged on
        ``actorio.nats``).

        Raises ``ValueError`` for an invalid name, or durable settings the server refuses to
        change; ``TypeError`` if ``actor`` is neither an actor nor a local reference;
        ``RuntimeError`` for ``durable`` on a server without JetStream.
        """
        check_name(name)
        found = mailbox_of(actor)  # None for a remote reference
        if found is None:
            kind = type(cast(object, actor)).__name__
            raise TypeError(f"publish() takes an actor or a local reference, not {kind}")
        cell = found
        if cell.closed:
            raise ActorStopped(cell.actor.identifier)
        if self._closed:
            raise RuntimeError("the node is closed")
        settings = Durable() if durable is True else (durable or None)
        subject = self._actor_subject(name)
        # The stream first: if it cannot be set up, nothing was started.
        stored = None if settings is None else await self._streams.set_up(name, subject, settings)
        if not cell.actor.started and not cell.closed:
            await cell.actor.start()
        publication = Publication(self, name, cell, cell.actor.reference, settings)
        if stored is None:

            async def on_message(msg: Msg) -> None:
                await self._receiver.receive(publication.actor, msg)

            publication._subscription = await self._nc.subscribe(subject, queue=subject, cb=on_message)
            await self._nc.flush()
        else:
            publication._pull = stored
            publication._pump = self._spawn(self._pump(publication, stored, settings or Durable()))
        self._publications.add(publication)
        return publication

    @overload
    def ref(self, name: str, protocol: None = None, *, durable: bool = False) -> RemoteRef[Message[Any]]: ...
    @overload
    def ref(self, name: str, protocol: type[Actor[Q]], *, durable: bool = False) -> RemoteRef[Q]: ...
    @overload
    def ref(self, name: str, protocol: type[ActorRef[Q]], *, durable: bool = False) -> RemoteRef[Q]: ...
    @overload
    def ref(self, name: str, protocol: type[Q], *, durable: bool = False) -> RemoteRef[Q]: ...
    def ref(self, name: str, protocol: Any = None, *, durable: bool = False) -> RemoteRef[Any]:
        """A reference to the actor published as ``name`` (by any process).

        ``protocol`` gives the accepted messages, checked at ``tell``/``ask`` before anything is
        sent: the actor class, ``ActorRef[A | B]``, or one message class; ``None`` accepts any
        message (the remote actor still validates it). Statically the reference is an ``ActorRef``
        of that protocol. A client that has only a generated stub (``python -m actorio stubs``)
        writes ``greeter: GreeterRef = node.ref("greeter")``: the checkers then hold it to the
        stub's protocol. ``durable=True`` for an actor published durably: a tell then returns once
        the stream stored it. Raises ``ValueError`` for an invalid name, ``TypeError`` for an
        invalid ``protocol``.
        """
        check_name(name)
        return RemoteRef(self._outbox, self._actor_subject(name), name, _protocol_members(protocol), durable)

    # -- asking -------------------------------------------------------------------------------

    async def _request(self, ref: RemoteRef[Any], body: bytes, timeout: float | None) -> Msg:
        """Send a request body to ``ref`` and return its reply: a core NATS request, or, durable,
        the body stored with a reply subject of this node's. Raises `ActorNotFound` if nobody
        publishes the name, ``asyncio.TimeoutError`` after ``timeout`` (``ask_timeout`` if None)."""
        wait = self.ask_timeout if timeout is None else timeout
        headers = {TIMEOUT: repr(wait)}
        if not ref.durable:
            try:
                return await self._nc.request(ref.subject, body, timeout=wait, headers=headers)
            except nats.errors.NoRespondersError:
                raise ActorNotFound(ref.identifier, ref.subject) from None
            except nats.errors.TimeoutError:
                raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {wait} s") from None
        token = uuid.uuid4().hex
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._replies[token] = future
        headers[REPLY] = f"{self.prefix}.reply.{self.node_id}.{token}"

        async def store_then_wait() -> Msg:
            await self._streams.store(ref, body, headers, None)
            return await future

        try:
            return await asyncio.wait_for(store_then_wait(), wait)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {wait} s") from None
        finally:
            self._replies.pop(token, None)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._replies.get(msg.subject.rsplit(".", 1)[-1])
        if future is not None and not future.done():
            future.set_result(msg)

    # -- receiving ----------------------------------------------------------------------------

    async def _on_export(self, msg: Msg) -> None:
        await self._addresses.receive(msg, self._receiver.receive)

    # -- durable mailboxes --------------------------------------------------------------------

    async def _pump(
        self, publication: Publication, subscription: JetStreamContext.PullSubscription, settings: Durable
    ) -> None:
        """Fetch from the durable consumer and hand each message to the actor, one at a time;
        acknowledge it once handled."""
        batch = 1 if settings.ordered else settings.prefetch
        failures = 0
        while not publication._closing:
            try:
                messages = await subscription.fetch(batch, timeout=1.0)
                failures = 0
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, OSError) as error:
                # The server is away: wait for the client to reconnect, backing off up to 1 s.
                failures += 1
                _logger.debug("fetch failed (%r), retrying", error)
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            publication._busy = True
            # The consumer's ack_wait runs from each message's delivery: the messages of a batch
            # waiting their turn are reported in progress, so that only a process that stopped
            # working (killed, hung) has its messages delivered again.
            waiting = list(messages)
            keep_alive = self._spawn(self._report_progress(waiting, settings.redelivery_delay / 2))
            try:
                for index, msg in enumerate(messages):
                    try:
                        handled = not publication._closing and await self._handle_stored(publication, msg)
                    except Exception:
                        _logger.exception("%s: a stored message could not be delivered", publication.name)
                        with contextlib.suppress(nats.errors.Error):
                            await msg.term()  # it would fail again wherever it went
                        waiting.remove(msg)
                        continue
                    if not handled:
                        for rest in messages[index:]:
                            with contextlib.suppress(nats.errors.Error):
                                await rest.nak()
                        if publication.closing():
                            return
                        break  # an incarnation ended (a supervised restart): fetch again for the next
                    waiting.remove(msg)
            finally:
                keep_alive.cancel()
                publication._busy = False

    async def _handle_stored(self, publication: Publication, msg: Msg) -> bool:
        """Deliver one stored message and acknowledge it when handled; False if the actor stopped
        first (the message is then given back)."""
        actor = await self._incarnation(publication)
        if actor is None:
            return False
        try:
            message = self._receiver.validate(actor, msg.data, msg.headers)
        except InvalidPayload as error:
            await self._receiver.refuse(actor, error, (msg.headers or {}).get(REPLY), msg.data)
            await msg.term()  # never valid: not delivered again
            return True
        reply = (msg.headers or {}).get(REPLY)
        stopped = self._receiver.ended(actor)
        if reply:
            asking, future = await queue_ask(actor, message)
            await asyncio.wait([future, stopped], return_when=asyncio.FIRST_COMPLETED)
            if stopped.done() and not future.done():
                _withdraw(publication, asking)
                return False
            if not await self._receiver.answer(actor, message, future, reply, None):
                return False
        else:
            await actor.reference.tell(message)
            handled = await wait_handled(actor, stopped)
            if not handled:
                _withdraw(publication, message)
                return False
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()
        return True

    async def _incarnation(self, publication: Publication) -> Actor[Any] | None:
        """The published actor's running incarnation; while a supervised child waits for its next
        one (a restart's backoff), wait for it. None once the actor stopped for good."""
        cell = publication._mailbox
        while not cell.closed and not publication.closing():
            actor = cell.actor
            if actor.running:
                return actor
            await asyncio.sleep(0.02)  # between incarnations: poll until the next one runs
        return None

    async def _report_progress(self, waiting: list[Msg], interval: float) -> None:
        """Tell the stream, every ``interval`` seconds, that the fetched messages not yet handled
        are still being worked on (their redelivery delay starts again)."""
        while True:
            await asyncio.sleep(interval)  # a heartbeat period, not a wait for state
            for msg in list(waiting):
                with contextlib.suppress(nats.errors.Error):
                    await msg.in_progress()

    @property
    def _exports(self) -> Mapping[str, ActorRef[Any]]:
        """The local actors whose address travelled as a sender, by the token of the address."""
        return self._addresses.exports

    # -- closing ------------------------------------------------------------------------------

    async def close(self, timeout: float = 10.0) -> None:
        """Drain and close: unpublish every actor (see `Publication.unpublish`), wait (up to
        ``timeout`` seconds) for the replies to asks being served, send what is queued, then
        close the connection. Local actors keep running. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for publication in list(self._publications):
            await publication.unpublish(timeout)
        pending = [task for task in self._tasks if task is not self._outbox.flusher]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        await self._outbox.flushed(timeout)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the node {self.node_id} closed before the reply came"))
        if not self._nc.is_closed:
            try:
                await asyncio.wait_for(self._nc.drain(), timeout)
            except (asyncio.TimeoutError, nats.errors.Error):
                await self._nc.close()
        for task in list(self._tasks):
            task.cancel()
        self._addresses.forget_all()  # the actors outlive this node: let them forget it

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Node {self.node_id} at {self.url}>"
