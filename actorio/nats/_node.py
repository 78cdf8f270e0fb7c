"""`Node`: one process's connection to NATS; it publishes local actors and makes remote references.

The node owns connecting, publishing (a core subscription or a durable mailbox: see
``_publication`` and ``_durable``), making references, the request plumbing of asks and closing.
It wires the other parts together: the connection (``_connection``: TLS, credentials, refusals,
syncing with the server), the outbox (``_outbox``) sends what remote references are told, the
sender addresses (``_addresses``) and the wire codec (``_codec``).

Subjects (``prefix`` is ``actorio`` unless given):

- ``<prefix>.actor.<name>``: a published actor. Every process that publishes ``name`` subscribes
  in the queue group ``<prefix>.actor.<name>``, so each message goes to one of them: a pool.
- ``<prefix>.node.<node id>.<token>``: a local actor that travelled as a message's sender.
- ``<prefix>.reply.<node id>.<token>``: the reply to an ask sent to a durable actor.

A durable actor's subject is captured by a JetStream stream (work-queue retention) with one durable
pull consumer, ``actorio``, shared by every process that publishes the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import Actor, ActorRef, ChildSpec, Message, SupervisorStrategy
from ..lowlevel import inject, is_actor_class, is_message_class, message_types_of, report_transport, task_of
from ._addresses import Addresses, check_name, check_subject_prefix
from ._codec import REPLY, TIMEOUT, StoredAsk
from ._connection import Security, open_client, redact, synced
from ._dead_letter_stream import StoredDeadLetter
from ._durable import Durable, Pump, Streams, stream_name
from ._entities import Entities
from ._errors import ActorNotFound, NotAuthorized
from ._export_lanes import ExportLanes
from ._keeper import PublicationSupervisor, Target
from ._node_entities import NodeEntities
from ._node_provision import NodeProvision
from ._outbox import Outbox
from ._publication import (
    DEFAULT_PENDING_LIMITS,
    CoreSubscription,
    Inlet,
    Publication,
    Receiver,
    check_pending_limits,
)
from ._remote import RemoteRef
from ._service import NodeService

__all__ = ["Node"]

_logger = logging.getLogger("actorio.nats")

Q = TypeVar("Q", bound=Message[Any])


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


class Node(NodeProvision, NodeEntities):
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
        self,
        nc: Client,
        *,
        url: str,
        prefix: str,
        ask_timeout: float,
        store_timeout: float,
        reply_prefixes: Iterable[str] = (),
        debug_errors: bool = False,
    ) -> None:
        self._nc = nc
        self.url = redact(url)
        """The URL connected to, with any password or token replaced by ``***``."""
        self.prefix = prefix
        self.ask_timeout = ask_timeout
        self.store_timeout = store_timeout
        self.node_id = uuid.uuid4().hex[:16]
        self._streams = Streams(nc, prefix=prefix, store_timeout=store_timeout)
        self._publications: set[Publication] = set()
        self._owned: set[PublicationSupervisor] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._addresses = Addresses(nc, prefix=prefix, node_id=self.node_id, reply_prefixes=reply_prefixes)
        self._outbox = Outbox(
            nc, spawn=self._spawn, addresses=self._addresses, streams=self._streams, request=self._request
        )
        self._receiver = Receiver(
            nc,
            spawn=self._spawn,
            outbox=self._outbox,
            destinations=self._addresses.destinations,
            ask_timeout=ask_timeout,
            debug_errors=debug_errors,
        )
        self._lanes = ExportLanes(self._receiver, self._spawn)
        self._replies: dict[str, StoredAsk] = {}
        self._entities: Entities | None = None
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
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        tls_handshake_first: bool = False,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        nkey_seed: str | None = None,
        nkey_seed_file: str | os.PathLike[str] | None = None,
        credentials_file: str | os.PathLike[str] | None = None,
        inbox_prefix: str = "_INBOX",
        reply_prefixes: Iterable[str] = (),
        debug_errors: bool = False,
    ) -> Node:
        """Connect to the NATS server at ``url`` (several: comma-separated).

        Raises `NodeUnreachable` if no server answers within ``connect_timeout`` seconds. Once
        connected, the node reconnects forever, every ``reconnect_wait`` seconds. ``ask_timeout``
        bounds asks made with ``timeout=None`` (and, answering, how long the node waits for the
        reply of an ask whose ``Actorio-Timeout`` is missing or not a sane number of seconds);
        ``store_timeout`` bounds a durable tell's retries.

        Security (see docs/nats-security.md); secrets never appear in ``node.url``,
        ``repr(node)``, an error or a log line of actorio's:

        - ``tls``: an ``ssl.SSLContext`` that trusts the server's certificate authority
          (``ssl.create_default_context(cafile=...)``) and, for mutual TLS, holds the client's
          certificate (``context.load_cert_chain(cert, key)``). With ``tls`` (or a ``tls://`` URL)
          the node refuses a server that does not require TLS, before sending anything;
          ``tls_hostname``: the name the server's certificate must carry (default: the URL's host);
          ``tls_handshake_first``: TLS from the first byte, for a server configured with
          ``handshake_first``.
        - credentials, one kind at most: ``user`` and ``password`` (or ``nats://user:password@host``
          in the URL); ``token`` (or ``nats://token@host``); ``nkey_seed`` (the NKey seed itself,
          ``"SU..."``) or ``nkey_seed_file`` (a file holding it); ``credentials_file`` (a ``.creds``
          file: a user JWT and its NKey seed, as written by ``nsc``); a ``token`` may also go with
          an NKey or a ``.creds`` file with nats-py 2.15 or later (an auth callout reads it). NKeys
          need the ``nkeys`` package, in the ``nats`` extra.
        - ``inbox_prefix``: where this connection's replies come (its asks', JetStream's answers):
          ``<inbox_prefix>.<random token>``. Give each NATS user a prefix of its own
          (``"_INBOX.shop-worker"``) and let it subscribe to that only: then no user can read
          another's replies.

        Raises `NotAuthorized` as soon as the server refuses the credentials, the client's
        certificate, or (the user's permissions) the node's subscriptions to its own addresses,
        ``<prefix>.node.<id>.*`` and ``<prefix>.reply.<id>.*``; `NodeUnreachable` as soon as a
        TLS handshake fails otherwise (the server's certificate not trusted, no TLS where it is
        wanted); neither waits out ``connect_timeout``. ``ValueError`` or ``FileNotFoundError``
        for credentials that cannot be used (two kinds, a password without a user, an invalid
        seed, a missing file), before connecting.

        Replies and senders: the node publishes on behalf of a message it received (a request's
        reply subject, the address in an ``Actorio-Sender`` header, a durable ask's reply header)
        only to subjects under the reply inboxes (``_INBOX.``, and ``inbox_prefix``) or its own
        ``prefix``: never one starting with ``$``, nor a malformed one. ``reply_prefixes`` (e.g.
        ``["billing.replies"]``) adds prefixes, for askers whose inboxes are elsewhere;
        ``ValueError`` for a prefix starting with ``$`` or not a plain subject. A message whose
        reply subject or sender is refused never reaches a handler: it is a dead letter
        ``invalid``.

        ``debug_errors=True`` (for development only) makes error replies carry the exception's
        module and traceback (`RemoteError.remote_traceback`); by default they carry its type
        name and text only, as the traceback tells the asker where the node's code is.
        """
        check_name(prefix)
        check_name(inbox_prefix)
        if isinstance(reply_prefixes, str):
            raise ValueError("reply_prefixes is a list of subject prefixes, not one string")
        reply_prefixes = tuple(reply_prefixes)
        for reply_prefix in reply_prefixes:
            check_subject_prefix(reply_prefix)
        security = Security(
            tls=tls,
            tls_hostname=tls_hostname,
            tls_handshake_first=tls_handshake_first,
            user=user,
            password=password,
            token=token,
            nkey_seed=nkey_seed,
            nkey_seed_file=nkey_seed_file,
            credentials_file=credentials_file,
        )
        node: Node | None = None

        async def on_reconnected() -> None:
            if node is not None:
                node.reconnections += 1

        async def on_slow_consumer(error: nats.errors.SlowConsumerError) -> None:
            if node is not None:
                await node._receiver.dropped(error)  # a message dropped on arrival: counted, reported

        nc = await open_client(
            url,
            name=name,
            connect_timeout=connect_timeout,
            reconnect_wait=reconnect_wait,
            security=security,
            inbox_prefix=inbox_prefix,
            on_reconnected=on_reconnected,
            on_slow_consumer=on_slow_consumer,
        )
        try:
            node = cls(
                nc,
                url=url,
                prefix=prefix,
                ask_timeout=ask_timeout,
                store_timeout=store_timeout,
                reply_prefixes=reply_prefixes,
                debug_errors=debug_errors,
            )
            # nats-py leaves a parameter of subscribe() unannotated (``future: Future``).
            subscribe = nc.subscribe  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            exports = await subscribe(f"{prefix}.node.{node.node_id}.*", cb=node._on_export)
            replies = await subscribe(f"{prefix}.reply.{node.node_id}.*", cb=node._on_reply)
            await synced(nc, exports, replies)
        except PermissionError as error:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            raise NotAuthorized(redact(url), str(error)) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            raise
        return node

    @property
    def connected(self) -> bool:
        """True while the connection to the server is up."""
        return self._nc.is_connected

    @property
    def client(self) -> Client:
        """The underlying nats-py client."""
        return self._nc

    def _subject_of(self, name: str) -> str:
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
        self,
        name: str,
        actor: Actor[Any] | ActorRef[Any] | ChildSpec[Actor[Any]] | Callable[[], Actor[Any]],
        *,
        durable: Durable | bool = False,
        pending_limits: tuple[int, int] | None = None,
        supervision: SupervisorStrategy | None = None,
    ) -> Publication:
        """Publish ``actor`` under ``name``: messages to ``node.ref(name, ...)`` from any process
        reach it. Returns once the server has the subscription (or, durable, the streams and
        consumer): a message sent after that reaches it.

        What keeps it serving depends on what ``actor`` is:

        - a factory (an actor class, a ``functools.partial``, a lambda, or a `ChildSpec` for the
          child options): the node makes the actor and supervises it, as a parent supervises a
          child (`Actor.supervise`): a handler failing on a told message makes the message a dead
          letter and restarts the actor, after a growing delay, with its mailbox kept.
          ``supervision`` (a `SupervisorStrategy`: ``max_restarts`` within ``within``, and the
          default ``decider`` and ``backoff``) sets the policy; the default restarts it after
          any ``Exception``, 0.1 s doubling up to 5 s apart (plus up to 20 %), for as long as it
          fails (its intensity, 10 restarts within 10 s, is more than that backoff allows). The
          actor is named after the publication (unless a `ChildSpec` names it) and stops when
          the node closes;
        - an actor not yet started (or its reference): it cannot be made again, so a handler
          failing on a told message makes the message a dead letter and the same actor goes on
          with the next, state kept (the ``resume`` directive). ``supervision``'s ``decider`` may
          choose ``stop`` (or ``escalate``) for some errors instead; the node starts it, and it
          keeps running after the node closes;
        - a running actor (the reference of a supervised child, an actor its owner started): it
          is published as it is; whoever started it supervises it (a supervised child stays
          published across its restarts). ``supervision`` is then a ``ValueError``.

        Each actor the node supervises has a supervisor of its own: one that fails more often
        than its ``supervision`` allows stops, and its publications end (the name is no longer
        published by this process; logged on ``actorio.nats``), while the node's other
        publications go on. A publication ends by itself when its actor stops for good.

        Messages are validated with the actor's protocol (``type(actor).protocol``); an invalid
        one never reaches a handler: an ask gets `InvalidPayload` back, a tell is a dead letter
        (logged on ``actorio.dead_letters``). Several processes (or actors) publishing one name
        share its messages (a queue group): each message goes to one of them.

        ``durable`` (``True`` or a `Durable`) gives the actor a durable mailbox, a JetStream stream:

        - at least once: a message is acknowledged only after its handler finished (an ask: after
          its reply was sent); if the process dies or the actor stops first, the message is
          delivered again, to this name's next process, ``redelivery_delay`` seconds after it
          was delivered (at once if the actor stopped while this process kept running);
        - a handler that raises on a told message: the message is delivered again after a
          growing delay (``retry_backoff``), up to ``max_deliver`` deliveries (5), then moved to
          the name's dead-letter stream (see `dead_letters`, `replay`) and recorded in
          ``actorio.dead_letters``; the other messages keep flowing meanwhile. An ask's handler
          that raises answers the asker with the error, and the message is acknowledged;
        - duplicates: a message stored twice with the same message id within ``dedupe_window`` is
          stored once; but a redelivered message is handled again (handlers should be idempotent);
        - order: messages are delivered in stream order, but a redelivered one comes after later
          ones unless ``ordered``.

        The processes of a durable pool should use the same `Durable` settings: the last one to
        publish sets them for all (the consumer is updated, and a warning logged on
        ``actorio.nats``).

        ``pending_limits=(messages, bytes)`` (core publications only) bounds what the client holds
        for the actor while its mailbox is full: NATS messages (a batch of tells is one; see
        docs/nats.md), and bytes (each message whole: payload, subjects, headers). An actor's
        mailbox is unbounded unless it has a ``mailbox_capacity``: without one, what a slow
        handler has not taken waits in the mailbox, without bound, and these limits never apply.
        Beyond them, messages are dropped on arrival, each a dead letter ``overflow``, with a
        WARNING on ``actorio.nats`` (within a limit); a dropped ask is answered at once with
        `MailboxFull`. By default nats-py's limits: 524,288 messages, 128 MiB. Core tells are at
        most once: if every message matters, ask (the asker learns of a loss) or use ``durable``.

        Raises ``ValueError`` for an invalid name, durable settings the server refuses to
        change, ``supervision`` for a running actor, or ``pending_limits`` that are not two
        positive integers or are given with ``durable``; ``TypeError`` if ``actor`` is neither an
        actor, a local reference nor a factory; `ActorStopped` for an actor that has stopped;
        ``RuntimeError`` for ``durable`` on a server without JetStream; what a factory raises.
        """
        check_name(name)
        limits = DEFAULT_PENDING_LIMITS if pending_limits is None else check_pending_limits(pending_limits)
        if pending_limits is not None and durable:
            raise ValueError(
                "pending_limits applies to core publications: a durable mailbox fetches what it handles"
            )
        target = Target.of(name, actor, supervision)
        if self._closed:
            raise RuntimeError("the node is closed")
        settings = Durable() if durable is True else (durable or None)
        subject = self._subject_of(name)
        # The streams first: if they cannot be set up, nothing was started.
        pull, restore = (
            (None, None) if settings is None else await self._streams.set_up(name, subject, settings)
        )
        try:
            cell, supervisor = await target.start()
        except BaseException:
            if pull is not None:
                with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                    await asyncio.wait_for(pull.unsubscribe(), 5.0)
            raise
        if supervisor is not None and target.owned:
            self._owned.add(supervisor)
            supervisor_task = task_of(supervisor)
            if supervisor_task is not None:
                supervisor_task.add_done_callback(lambda _: self._owned.discard(supervisor))
        inlet: Inlet
        if pull is None or settings is None:
            inlet = CoreSubscription(
                self._nc, self._receiver, subject=subject, mailbox=cell, pending_limits=limits
            )
        else:
            inlet = Pump(
                self._nc,
                self._receiver,
                pull,
                settings,
                spawn=self._spawn,
                mailbox=cell,
                name=name,
                dead=self._streams.dead,
                restore=restore,
            )
        publication = Publication(
            self, name, subject, cell, settings, inlet, spawn=self._spawn, leave=self._publications.discard
        )
        await inlet.open()
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
        return RemoteRef(self._outbox, self._subject_of(name), name, _protocol_members(protocol), durable)

    # -- dead letters -------------------------------------------------------------------------

    async def dead_letters(self, name: str, *, limit: int | None = 100) -> list[StoredDeadLetter]:
        """The messages in the dead-letter stream of the durable name ``name``, oldest first (at
        most ``limit``; ``None``: all), without taking them out: each with its payload, its
        headers, its handler's last error and its delivery count (see `StoredDeadLetter`).

        Raises ``ValueError`` for an invalid name, or one that was never published durably."""
        check_name(name)
        return await self._streams.dead.read(name, stream_name(self.prefix, name), limit)

    async def replay(self, name: str, sequences: Iterable[int] | None = None) -> int:
        """Store the dead letters of the durable name ``name`` in its stream again (those whose
        ``sequence`` is in ``sequences``, else all), oldest first: each is delivered again, as a
        new message with a new delivery count, and is deleted from the dead-letter stream once
        stored. Returns how many were replayed. A replay cut short (a crash between storing and
        deleting) can be run again: within ``dedupe_window`` the stream stores each message once.

        Raises ``ValueError`` for an invalid name, or one that was never published durably;
        `ActorNotFound` or ``asyncio.TimeoutError`` if its stream does not store a message."""
        check_name(name)
        ref = self.ref(name, durable=True)

        async def store(data: bytes, headers: Mapping[str, str], msg_id: str) -> None:
            await self._streams.store(ref, data, headers, msg_id)

        return await self._streams.dead.replay(name, stream_name(self.prefix, name), sequences, store)

    # -- asking -------------------------------------------------------------------------------

    async def _request(self, ref: RemoteRef[Any], body: bytes, timeout: float | None) -> Msg:
        """Send a request body to ``ref`` and return its reply: a core NATS request, or, durable,
        the body stored with a reply subject of this node's. Raises `ActorNotFound` if nobody
        publishes the name, ``asyncio.TimeoutError`` after ``timeout`` (``ask_timeout`` if None)."""
        wait = self.ask_timeout if timeout is None else timeout
        headers = {TIMEOUT: repr(wait)}
        inject(headers)
        report_transport("nats", "sent", "ask")
        if not ref.durable:
            try:
                return await self._nc.request(ref.subject, body, timeout=wait, headers=headers)
            except nats.errors.NoRespondersError:
                raise ActorNotFound(ref.identifier, ref.subject) from None
            except nats.errors.TimeoutError:
                raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {wait} s") from None
        token = uuid.uuid4().hex
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        pending = self._replies[token] = StoredAsk(future, stream_name(self.prefix, ref.identifier))
        headers[REPLY] = f"{self.prefix}.reply.{self.node_id}.{token}"

        async def store_then_wait() -> Msg:
            pending.stored(await self._streams.store(ref, body, headers, None))
            return await pending.future

        try:
            return await asyncio.wait_for(store_then_wait(), wait)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"no reply from {ref.identifier} within {wait} s") from None
        finally:
            self._replies.pop(token, None)

    async def _on_reply(self, msg: Msg) -> None:
        pending = self._replies.get(msg.subject.rsplit(".", 1)[-1])
        if pending is not None:
            pending.offer(msg)

    # -- receiving ----------------------------------------------------------------------------

    async def _on_export(self, msg: Msg) -> None:
        await self._addresses.receive(msg, self._lanes.deliver)

    def publications(self) -> list[tuple[Publication, Actor[Any]]]:
        """The names this node publishes now, each with the actor that handles it now."""
        return [(publication, publication.actor) for publication in self._publications]

    async def serve_as_service(self, name: str = "actorio", description: str = "actorio node") -> NodeService:
        """Answer the NATS micro protocol (``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``) as service
        ``name`` with this node's id, each published actor an endpoint (see `NodeService`), until
        `NodeService.stop` or `close`. Needs permission to subscribe to ``$SRV.>``."""
        service = NodeService(self, name, description, self._addresses.destinations)
        await service.start()
        return service

    # -- closing ------------------------------------------------------------------------------

    async def close(self, timeout: float = 10.0) -> None:
        """Drain and close: unpublish every actor (see `Publication.unpublish`), wait (up to
        ``timeout`` seconds) for the replies to asks being served, stop the actors this node
        made from a factory, send what is queued, then close the connection. The actors it was
        given keep running. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._entities is not None:
                await self._entities.close(timeout)
            for publication in list(self._publications):
                await publication.unpublish(timeout)
            pending = [task for task in self._tasks if task is not self._outbox.flusher]
            if pending:
                await asyncio.wait(pending, timeout=timeout)
            for supervisor in list(self._owned):
                await supervisor.stop(timeout)
            await self._outbox.flushed(timeout)
        finally:
            # Whatever failed above (the server gone, a timeout, a cancellation), the connection
            # is closed: a close that raises must not leave it open behind it.
            for stored in self._replies.values():
                if not stored.future.done():
                    stored.future.set_exception(
                        ConnectionError(f"the node {self.node_id} closed before the reply came")
                    )
            try:
                if not self._nc.is_closed:
                    with contextlib.suppress(asyncio.TimeoutError, nats.errors.Error, OSError):
                        await asyncio.wait_for(self._nc.drain(), timeout)
            finally:
                if not self._nc.is_closed:
                    # A connection already lost fails to flush what it still holds (nothing more
                    # can be sent anyway): ConnectionResetError, or a TypeError from asyncio 3.12.1's
                    # transport, whose writelines() after the connection was lost calls None.
                    with contextlib.suppress(OSError, TypeError):
                        await self._nc.close()
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                self._lanes.close()
                self._addresses.forget_all()  # the actors outlive this node: let them forget it
                if tasks:  # let them end: a batch being told records the pieces it did not tell
                    await asyncio.wait(tasks, timeout=1.0)

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
