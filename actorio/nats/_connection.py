"""The node's NATS connection: opening it securely, reporting refusals, and syncing with the server.

Owns:

- `Security`: the TLS and credential options of `Node.connect`, checked before anything is sent;
- `open_client`: connect (TLS, credentials), giving up at once when the server refuses the
  credentials or a TLS handshake fails, instead of retrying until the connect timeout;
- `redact`: a URL with its password or token hidden, for every repr, log line and error;
- `synced`: return once the server has processed every command sent so far (a SUB included);
- `beyond_payload` and `count_whole_messages`: a subscription's pending bytes limit counts what
  a message holds beyond its payload (subject, reply subject, headers), which nats-py leaves out.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import logging
import os
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from sys import getsizeof
from types import CodeType
from typing import Any, cast
from urllib.parse import urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from ..lowlevel import LogLimit, printable
from ._codec import wire_size
from ._errors import NodeUnreachable, NotAuthorized

__all__ = [
    "HEADER_COST",
    "Security",
    "beyond_payload",
    "count_whole_messages",
    "open_client",
    "redact",
    "synced",
]

_logger = logging.getLogger("actorio.nats")

_REFUSED_CREDENTIALS = (
    "authorization violation",
    "user authentication expired",
    "user authentication revoked",
    "account authentication expired",
)
"""The server's ``-ERR`` texts (lower case) that mean: these credentials will not do."""

_REFUSED_PUBLISH = re.compile(r'(?i)permissions violation for publish to "([^"\s]+)"')
"""The server's ``-ERR`` for a publish its permissions refused, and its subject."""

_REFUSED_CERTIFICATE = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_EXPIRED",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "ACCESS_DENIED",
)
"""TLS alerts (in ``SSLError.reason``) by which the server refuses this client's certificate."""

_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)
"""TLS errors of a connection cut short, not of a handshake refused: connecting goes on."""


def redact(url: str) -> str:
    """``url`` (several: comma-separated) with each password or token replaced by ``***``:
    ``nats://alice:s3cret@host`` becomes ``nats://alice:***@host``, ``nats://t0ken@host`` becomes
    ``nats://***@host``. Everything before the last ``@`` is taken as credentials."""
    return ",".join(_redact_one(part) for part in url.split(","))


def _redact_one(url: str) -> str:
    head, separator, rest = url.partition("://")
    if separator:
        head += separator
    else:
        head, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{head}{user}:***@{host}" if colon else f"{head}***@{host}"


def _sends_token_beside_keys() -> bool:
    """Whether the installed nats-py sends a token with an NKey's or a ``.creds`` file's
    signature (2.15 and later); before, it dropped the token."""
    try:
        major, minor = (int(part) for part in importlib.metadata.version("nats-py").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (2, 15)


_TOKEN_BESIDE_KEYS = _sends_token_beside_keys()


def _has_url_credentials(url: str) -> bool:
    """Whether a server of ``url`` (comma-separated) carries credentials, as nats-py reads them:
    the user (or token) of its network location."""
    for part in url.split(","):
        part = part.strip()
        if urlsplit(part if "://" in part else f"nats://{part}").username:
            return True
    return False


@dataclass(frozen=True)
class Security:
    """The TLS and credential options of `Node.connect` (see there), before nats-py gets them."""

    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = None
    tls_handshake_first: bool = False
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed: str | None = None
    nkey_seed_file: str | os.PathLike[str] | None = None
    credentials_file: str | os.PathLike[str] | None = None

    def __repr__(self) -> str:  # never shows a secret
        given = [name for name, value in vars(self).items() if value not in (None, False)]
        return f"Security({', '.join(given)})"

    def check(self, url: str = "") -> None:
        """Refuse what nats-py would only find out while connecting (and then retry until the
        connect timeout): a missing file, an invalid seed, a password without a user, two kinds
        of credentials that nats-py would not both use (those in ``url`` included; a token may go
        with an NKey or a ``.creds`` file from nats-py 2.15 on). The errors never quote a secret."""
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together: give both or neither")
        secrets = [
            kind
            for kind, given in (
                ("credentials in the URL", _has_url_credentials(url)),
                ("user/password", self.user is not None),
                ("token", self.token is not None),
            )
            if given
        ]
        keys = [
            kind
            for kind, given in (
                ("nkey_seed", self.nkey_seed is not None),
                ("nkey_seed_file", self.nkey_seed_file is not None),
                ("credentials_file", self.credentials_file is not None),
            )
            if given
        ]
        # nats-py would use one and drop the other, except a token beside an NKey or a .creds file
        # from nats-py 2.15 on (both are sent: an auth callout reads the token).
        clash = secrets if len(secrets) > 1 else keys if len(keys) > 1 else []
        if not clash and keys and secrets and (secrets != ["token"] or not _TOKEN_BESIDE_KEYS):
            clash = [secrets[0], keys[0]]
        if clash:
            raise ValueError(f"give one kind of credentials, not {' and '.join(clash)}")
        for file in (self.nkey_seed_file, self.credentials_file):
            if file is not None and not Path(file).is_file():
                raise FileNotFoundError(f"no such file: {os.fspath(file)!r}")
        seed: bytes | None = None
        if self.nkey_seed is not None:
            seed = self.nkey_seed.strip().encode()
        elif self.nkey_seed_file is not None:
            seed = Path(self.nkey_seed_file).read_bytes().strip()
        if seed is not None:
            try:
                nkeys: Any = importlib.import_module("nkeys")  # untyped; in actorio's `nats` extra
            except ImportError:
                raise ImportError("NKeys need the nkeys package: pip install nkeys") from None
            try:
                nkeys.from_seed(bytearray(seed)).wipe()
            except Exception:
                raise ValueError("the NKey seed is not a valid seed (a string starting with 'S')") from None

    @property
    def tls_wanted(self) -> bool:
        """True if the connection must be encrypted: a TLS context or handshake-first was given."""
        return self.tls is not None or self.tls_handshake_first


HEADER_COST = 100
"""What each header of a message held costs beyond its name and value (its dict slot)."""


def beyond_payload(msg: Msg) -> int:
    """The bytes a received message holds beyond its payload: its subject and reply subject, and
    each header's name and value as held in memory (``sys.getsizeof``: a character outside
    Latin-1 takes 2 or 4 bytes) with `HEADER_COST` more. ``TypeError`` for a header value that
    is no string (nats-py 2.9 can leave an object of its own, whose size says nothing of what
    it holds): such a message cannot be counted, and is dropped where it is."""
    headers = msg.headers
    size = len(msg.subject) + len(msg.reply or "")
    if headers:
        for name, value in headers.items():
            if type(value) is not str:
                raise TypeError(f"a header value of type {type(value).__name__}")
            size += HEADER_COST + getsizeof(name) + getsizeof(value)
    return size


def count_whole_messages(subscription: Subscription) -> None:
    """Make ``subscription``'s pending bytes limit count each message whole (`beyond_payload`
    too). nats-py counts payloads only: a subscription whose callback waits (for room in a
    bounded mailbox) held 397 messages of a small payload and 1 MB of headers each under a
    limit of 8 MiB. A message beyond the limit is then dropped on arrival as nats-py drops one
    (a slow consumer: reported to the client's error callback). Called as the subscription is
    made, for those whose callback may wait (a publication's, an entity type's): the others
    empty their queue as fast as it fills. Does nothing with a nats-py whose subscriptions keep
    no such queue."""
    queue: Any = getattr(subscription, "_pending_queue", None)
    if queue is None or not hasattr(subscription, "_pending_size"):
        return
    put, get = queue.put_nowait, queue.get_nowait
    limit: int = getattr(subscription, "_pending_bytes_limit", 0)
    extras: deque[int] = deque()  # what each message queued counted, in the queue's order
    uncounted = [queue.qsize()]  # arrived before: taken first (a FIFO), never counted
    sub: Any = subscription

    def put_nowait(msg: Msg) -> None:
        # nats-py has counted the payload and checked its limit already.
        try:
            extra = beyond_payload(msg)
        except Exception:  # not counted: dropped
            extra = limit
        if limit > 0 and sub._pending_size + extra >= limit:
            # nats-py gives the payload's count back and reports it; any other error would keep
            # the payload counted for good.
            raise asyncio.QueueFull
        put(msg)
        extras.append(extra)
        sub._pending_size += extra

    def get_nowait() -> Msg:
        msg: Msg = get()
        if uncounted[0]:
            uncounted[0] -= 1
        else:
            sub._pending_size -= extras.popleft()
        return msg

    queue.put_nowait, queue.get_nowait = put_nowait, get_nowait


class GuardedClient(Client):
    """nats-py's client, which never sends its CONNECT (credentials included) in the clear when
    TLS is wanted: nats-py itself upgrades to TLS only when the server requires it, and would
    otherwise go on in plain text, even with a TLS context or a ``tls://`` URL."""

    def __init__(self, *, tls_wanted: bool) -> None:
        super().__init__()
        self.tls_wanted = tls_wanted
        self._violations: deque[str] = deque(maxlen=64)
        self._refusals: dict[str, list[asyncio.Future[str]]] = {}
        """Who waits to hear of a refused publish, by subject (see `refusal`)."""
        self.violation_count = 0
        """The permission violations the server reported so far (the last 64 are kept)."""
        self.unreadable_count = 0
        """The messages dropped because nats-py could not read them (see `_GuardedParser`)."""
        self._terminating: set[asyncio.Task[None]] = set()
        self._ps = _GuardedParser(self)

    def violated(self, text: str) -> None:
        """Keep a permission violation that the server reported; tell who waits for a refusal of
        its subject (see `refusal`)."""
        self._violations.append(text)
        self.violation_count += 1
        if self._refusals:
            found = _REFUSED_PUBLISH.search(text)
            for waiter in self._refusals.get(found.group(1).lower() if found else "", ()):
                if not waiter.done():
                    waiter.set_result(text)

    @contextlib.contextmanager
    def refusal(self, subject: str) -> Generator[asyncio.Future[str], None, None]:
        """A future set to the server's text if it reports, within the block, that the user may
        not publish to ``subject``: the server answers nothing to a request it refused (a
        JetStream API call would wait for its timeout), and reports it apart, as an error."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        subject = subject.lower()  # (nats-py gives the server's error in lower case)
        waiting = self._refusals.setdefault(subject, [])
        waiting.append(waiter)
        try:
            yield waiter
        finally:
            waiting.remove(waiter)
            if not waiting:
                del self._refusals[subject]
            waiter.cancel()

    def violations_since(self, count: int) -> list[str]:
        """The permission violations reported after the first ``count`` (as far as they are kept)."""
        new = min(self.violation_count - count, len(self._violations))
        return list(self._violations)[len(self._violations) - new :] if new > 0 else []

    def _encrypted(self) -> bool:
        writer: object = getattr(self._transport, "_io_writer", None)
        get_extra_info = getattr(writer, "get_extra_info", None)
        if callable(get_extra_info):
            return get_extra_info("ssl_object") is not None
        server = self._current_server
        return server is not None and server.uri.scheme == "wss"

    def _connect_command(self) -> bytes:
        if self.tls_wanted and not self._encrypted():
            raise nats.errors.SecureConnWantedError
        return super()._connect_command()

    def unreadable(self, subject: bytes, reply: bytes, error: Exception) -> None:
        """The message on ``subject`` could not be read (see `_GuardedParser`): count it, log it
        within a limit and, if JetStream delivered it, terminate it (``+TERM``) so that it is not
        delivered again to clog its consumer."""
        self.unreadable_count += 1
        _unreadable.log(
            logging.WARNING,
            "dropped a message the client cannot read (%s), on subject %s: %s",
            type(error).__name__,
            _shown(subject),
            printable(str(error)[:200]),
        )
        try:
            ack = reply.decode()
        except UnicodeDecodeError:
            return
        if ack.startswith("$JS.ACK.") and ack.isprintable() and " " not in ack:
            task = asyncio.get_running_loop().create_task(self._terminate(ack))
            self._terminating.add(task)
            task.add_done_callback(self._terminating.discard)

    async def _terminate(self, ack: str) -> None:
        with contextlib.suppress(Exception):  # the connection may be closing: it stays undelivered
            await super().publish(ack, b"+TERM")

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """nats-py's publish, which also refuses (``MaxPayloadError``, nothing sent) a message
        whose headers take it past the server's ``max_payload``: nats-py checks the payload
        alone, and the server closes the connection for good on such a message. (While a
        client's publish is this method itself, the outbox sends tells without headers through
        nats-py's publish beneath it: a check added here for messages without headers must be
        added there too.)"""
        if headers and (size := wire_size(payload, headers)) > self.max_payload:
            raise TooLargeWithHeaders(size, len(payload), self.max_payload)
        await super().publish(subject, payload, reply, headers)


_unreadable = LogLimit(_logger, limit=10, about="messages the client could not read")


_PROCESS_MSG = Client._process_msg.__code__  # pyright: ignore[reportPrivateUsage]


def _raised_in(error: BaseException, code: CodeType) -> bool:
    """Whether ``error`` went through a frame running ``code`` (read on the error path only)."""
    frames = error.__traceback__
    while frames is not None:
        if frames.tb_frame.f_code is code:
            return True
        frames = frames.tb_next
    return False


class _GuardedParser(Parser):
    """nats-py's protocol parser, which drops a message that its client cannot read rather than
    end the connection's read loop.

    nats-py decodes subjects, reply subjects and header status lines as strict UTF-8 as it hands
    a message on (``Client._process_msg``), and an error there ends its read loop for good while
    the connection still looks connected: the node would hear nothing more. The server forwards
    such bytes from any client. The message was taken out of the buffer before the error, and its
    arguments are still the parser's: the client is told (`GuardedClient.unreadable`) and parsing
    goes on with the rest. An error of another operation after its bytes were taken (nats-py's
    PONG for a flush given up raises) is logged, and parsing goes on too: no message is blamed.
    A protocol error or an ``OSError`` (the connection's) is not caught: nats-py's read loop then
    ends and it reconnects, as without the guard. Guarded per chunk read, not per message: a
    message costs nothing more."""

    def __init__(self, nc: GuardedClient) -> None:
        super().__init__(nc)  # pyright: ignore[reportUnknownMemberType]  # nats-py: untyped
        self._guarded = nc

    async def parse(self, data: bytes = b"") -> None:
        while True:
            held = len(self.buf) + len(data)
            try:
                await super().parse(data)
                return
            except (nats.errors.ProtocolError, OSError):
                raise  # the connection's: its read loop ends, and nats-py reconnects
            except Exception as error:
                if len(self.buf) >= held:  # nothing was taken: not a message's (it would recur)
                    raise
                if _raised_in(error, _PROCESS_MSG):  # the message just taken (its arguments)
                    arguments: dict[str, Any] = self.msg_arg
                    self._guarded.unreadable(
                        arguments.get("subject", b""), arguments.get("reply", b""), error
                    )
                else:  # another operation's (a PONG for a flush given up): no message to blame
                    _unreadable.log(
                        logging.WARNING,
                        "the client met an error reading from the server, and reads on: %s",
                        printable(repr(error)[:200]),
                    )
                data = b""


def _shown(raw: bytes) -> str:
    """A subject from the wire, safe and short in a log line."""
    return printable(raw[:120].decode(errors="backslashreplace")) + ("..." if len(raw) > 120 else "")


class TooLargeWithHeaders(nats.errors.MaxPayloadError):
    """nats-py's ``MaxPayloadError`` (whoever catches that catches this) for a message whose
    payload fits the server's ``max_payload`` but whose headers take it past; it says so."""

    def __init__(self, size: int, payload: int, limit: int) -> None:
        super().__init__(size, payload, limit)
        self.size, self.payload, self.limit = size, payload, limit

    def __str__(self) -> str:
        return (
            f"nats: maximum payload exceeded: {self.size} bytes with the headers ({self.payload} of "
            f"payload), the server's max_payload is {self.limit}"
        )


def _refusal(error: BaseException, url: str) -> NodeUnreachable | None:
    """The error to raise at once for a connection attempt's ``error``, or None to go on trying."""
    text = str(error).lower()
    if isinstance(error, nats.errors.AuthorizationError) or (
        isinstance(error, nats.errors.Error) and any(refused in text for refused in _REFUSED_CREDENTIALS)
    ):
        return NotAuthorized(url, f"the server refused the credentials ({error})")
    if isinstance(error, nats.errors.SecureConnWantedError):
        return NodeUnreachable(
            url, "TLS is wanted but the server did not require it: no credentials or messages were sent"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return NodeUnreachable(url, f"the server's TLS certificate is not trusted ({error.verify_message})")
    if isinstance(error, ssl.SSLError) and not isinstance(error, _TRANSIENT_TLS):
        reason = error.reason or ""
        if any(alert in reason for alert in _REFUSED_CERTIFICATE):
            return NotAuthorized(url, f"the server refused the client's TLS certificate ({reason})")
        return NodeUnreachable(url, f"the TLS handshake failed ({reason or error})")
    return None


async def open_client(
    url: str,
    *,
    name: str | None,
    connect_timeout: float,
    reconnect_wait: float,
    security: Security,
    inbox_prefix: str,
    on_reconnected: Callable[[], Awaitable[None]],
    on_slow_consumer: Callable[[nats.errors.SlowConsumerError], Awaitable[None]] | None = None,
) -> Client:
    """A nats-py client connected to ``url`` (comma-separated servers).

    Raises `NotAuthorized` as soon as the server refuses the credentials or the client's TLS
    certificate, `NodeUnreachable` as soon as a TLS handshake fails otherwise (the server's
    certificate not trusted, or no TLS where it is wanted), or when no server answered within
    ``connect_timeout`` seconds. Neither quotes a secret. ``on_slow_consumer`` is told of each
    message nats-py dropped on arrival (a subscription over its pending limits). Once connected,
    the client reconnects forever; refusals and permission violations met meanwhile are logged as
    warnings (at most one line every 10 s), other connection errors at debug level.
    """
    security.check(url)
    shown = redact(url)
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[NodeUnreachable] = loop.create_future()
    last_error: list[BaseException] = []
    connected = False
    warnings = LogLimit(_logger, limit=1, window=10.0)
    nc = GuardedClient(
        tls_wanted=security.tls_wanted
        or any(part.strip().lower().startswith(("tls://", "wss://")) for part in url.split(","))
    )

    async def on_error(error: Exception) -> None:
        if on_slow_consumer is not None and isinstance(error, nats.errors.SlowConsumerError):
            await on_slow_consumer(error)  # a message dropped on arrival, not a connection error
            return
        last_error[:] = [error]
        refusal = _refusal(error, shown)
        if not connected:
            if refusal is not None and not refused.done():
                refused.set_result(refusal)
            _logger.debug("NATS connection error: %r", error)
        elif refusal is not None:
            warnings.log(logging.WARNING, "NATS refused to reconnect: %s", refusal.reason)
        elif "permissions violation" in str(error).lower():
            nc.violated(str(error))
            warnings.log(logging.WARNING, "NATS refused an operation of the node: %s", error)
        else:
            _logger.debug("NATS connection error: %r", error)

    async def reconnected() -> None:
        _logger.info("reconnected to %s", redact(nc.connected_url.geturl()) if nc.connected_url else shown)
        await on_reconnected()

    async def disconnected() -> None:
        _logger.info("disconnected from NATS")

    connecting = asyncio.ensure_future(
        nc.connect(
            servers=url.split(","),
            name=name,
            connect_timeout=max(1, round(connect_timeout)),
            reconnect_time_wait=cast(int, reconnect_wait),  # a float works; the stub says int
            max_reconnect_attempts=-1,
            error_cb=on_error,
            reconnected_cb=reconnected,
            disconnected_cb=disconnected,
            tls=security.tls,
            tls_hostname=security.tls_hostname,
            tls_handshake_first=security.tls_handshake_first,
            user=security.user,
            password=security.password,
            token=security.token,
            nkeys_seed_str=security.nkey_seed,
            nkeys_seed=_path(security.nkey_seed_file),
            user_credentials=_path(security.credentials_file),
            inbox_prefix=inbox_prefix,
        )
    )
    failure: NodeUnreachable | None = None
    try:
        either: set[asyncio.Future[Any]] = {connecting, refused}
        await asyncio.wait(either, timeout=connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        if refused.done():
            failure = refused.result()
        elif not connecting.done():
            reason = repr(last_error[0]) if last_error else "no answer"
            failure = NodeUnreachable(shown, f"no server answered within {connect_timeout} s ({reason})")
        elif (error := connecting.exception()) is not None:
            if not isinstance(error, (asyncio.TimeoutError, OSError, nats.errors.Error)):
                raise error
            failure = _refusal(error, shown) or NodeUnreachable(shown, f"cannot connect ({error!r})")
    except BaseException:
        await _abandon(connecting, nc)
        raise
    if failure is not None:
        await _abandon(connecting, nc)
        raise failure
    connected = True
    return nc


def _path(file: str | os.PathLike[str] | None) -> str | None:
    return None if file is None else os.fspath(file)


async def _abandon(connecting: asyncio.Future[None], nc: Client) -> None:
    """Stop connecting and close the client (within a second)."""
    connecting.cancel()
    await asyncio.wait({connecting})
    if not connecting.cancelled():
        connecting.exception()  # retrieved (asyncio reports one that never is)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 1.0)


async def synced(nc: Client, *subscriptions: Subscription) -> None:
    """Return once the server has processed every command this client sent so far.

    ``nc.flush()`` alone does not: nats-py 2.16 writes the flush's PING straight to the socket,
    while a SUB just made still waits in its write buffer for the client's flusher task, so the
    server may answer the PING (and a message from another connection may find no subscriber)
    before it reads the SUB. The flusher writes that buffer before the first PONG is read, so the
    second flush's PING follows the SUB, and its PONG comes once the server has the subscription.

    Raises ``PermissionError`` if the server refused one of ``subscriptions`` (its permissions for
    this user do not allow the subject: it says so before the PONG), after unsubscribing it.
    """
    before = nc.violation_count if isinstance(nc, GuardedClient) else 0
    await nc.flush()
    await nc.flush()
    if not isinstance(nc, GuardedClient) or not subscriptions:
        return
    refused = [text.lower() for text in nc.violations_since(before) if "subscription" in text.lower()]
    for subscription in subscriptions:
        if any(f'"{subscription.subject.lower()}"' in text for text in refused):
            for each in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await each.unsubscribe()
            raise PermissionError(
                f"the NATS server refused the subscription to {subscription.subject!r}: "
                "the user's permissions do not allow it"
            )
