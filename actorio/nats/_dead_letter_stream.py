"""A durable name's dead-letter stream: where a stored message goes once it cannot be handled.

Owns:

- the stream's name (``<stream>_DLQ``) and subject (``<prefix>.dlq.<name>``), and its set-up
  (`DeadLetterStreams.set_up`);
- what a moved message carries (`DeadLetterStreams.move`): its payload and its own headers as
  they were stored, plus ``Actorio-Dead-*`` headers saying why it is there (error type and
  message, deliveries, time, the stream and sequence it came from);
- reading it back (`DeadLetterStreams.read`, as `StoredDeadLetter` records) and replaying it
  into the name's stream (`DeadLetterStreams.replay`);
- `DeliveryLimitReached`, the error of the dead letter recorded when a message is moved;
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RawStreamMsg, RetentionPolicy, StorageType, StreamConfig

from .. import ActorioException
from ..lowlevel import printable
from ._codec import MSG_ID, sendable_headers, wire_size
from ._stream_setup import made_or_kept

__all__ = [
    "DEAD",
    "DeadLetterStreams",
    "DeliveryLimitReached",
    "StoredDeadLetter",
    "dead_letter_stream",
    "dead_letter_subject",
]

DEAD = "Actorio-Dead-"
"""The prefix of the headers a dead-letter stream adds to a message."""
_NAME = DEAD + "Name"
_STREAM = DEAD + "Stream"
_SEQUENCE = DEAD + "Sequence"
_DELIVERIES = DEAD + "Deliveries"
_ERROR_TYPE = DEAD + "Error-Type"
_ERROR = DEAD + "Error"
_TIME = DEAD + "Time"
_SUBJECT = DEAD + "Subject"
_REPLAY = DEAD + "Replay"
"""A token made when a message is moved (a digest keyed with the moving node's secret): the
message id its replay is stored under."""
_CUT = DEAD + "Cut"
"""On a message whose payload was cut to fit: its size, in bytes, before."""

_MAX_HEADER_BYTES = 65_535
"""The most header bytes JetStream stores with a message."""

_NATS = "Nats-"
"""The prefix of JetStream's headers."""
_EXPECTED_STREAM = "Nats-Expected-Stream"

_ERROR_CHARS = 500
"""The longest error message a dead-letter header keeps."""


def dead_letter_stream(stream: str) -> str:
    """The dead-letter stream of a durable name's stream."""
    return f"{stream}_DLQ"


def dead_letter_subject(prefix: str, name: str) -> str:
    """The subject of a durable name's dead-letter stream."""
    return f"{prefix}.dlq.{name}"


class DeliveryLimitReached(ActorioException):
    """A stored message was moved to its name's dead-letter stream: its handler failed on its last
    allowed delivery (``Durable.max_deliver``), it was delivered far more often than that without
    an outcome (to processes that died holding it), its delivery failed in the node itself, or
    it was for an entity that cannot start while such entities held half of their shard's
    messages (error type ``EntityNotStarted``; the dead letter's reason is then ``overflow``).

    The error of the dead letter recorded in ``actorio.dead_letters`` for the move; ``__cause__``
    is the handler's last error, if there was one.
    """

    def __init__(self, name: str, deliveries: int, stream: str, error_type: str, error: str) -> None:
        self.name = name
        self.deliveries = deliveries
        self.stream = stream
        self.error_type = error_type
        self.error = error
        super().__init__(
            f"{name}: moved to the dead-letter stream {stream} after {deliveries} deliveries "
            f"({error_type}: {error})"
        )


@dataclasses.dataclass(frozen=True)
class StoredDeadLetter:
    """A message in a durable name's dead-letter stream (see ``Node.dead_letters``)."""

    stream: str
    """The dead-letter stream (``<stream>_DLQ``)."""
    sequence: int
    """Its sequence in the dead-letter stream (to replay or delete it)."""
    name: str
    """The published name it was sent to."""
    data: bytes
    """The payload, as it was stored (the message's wire form)."""
    headers: Mapping[str, str]
    """The message's own headers as they were stored (``Actorio-Sender``, ...), without
    JetStream's (its message id, ...) and without the ``Actorio-Dead-*`` headers."""
    error_type: str
    """The class name of the handler's last error (``ValueError``), or of what else gave up."""
    error: str
    """Its message (at most 500 characters)."""
    deliveries: int
    """How many times it was delivered before it was moved."""
    failed_at: datetime.datetime
    """When it was moved (UTC)."""
    stream_sequence: int
    """Its sequence in the name's own stream."""
    subject: str = ""
    """The subject it was stored under (for a durable entity type's message,
    ``<prefix>.mailbox.<type>.<key>``: its key is the last token)."""
    replay_id: str = ""
    """The message id `Node.replay` stores it again under: a token made when it was moved (keyed
    with a secret of the moving node), the same for every replay of this letter (a replay
    retried after a crash stores it once), and one that no one who cannot read the dead-letter
    stream can know (a message stored first under it would make the replay a duplicate: lost)."""
    cut: int = 0
    """The message's size in bytes (payload and own headers) before it was cut to fit with the
    dead-letter headers (``data`` is then the payload's beginning, or ``headers`` left out);
    `Node.replay` leaves such a letter. 0: whole."""

    @classmethod
    def from_raw(cls, stream: str, raw: RawStreamMsg) -> StoredDeadLetter:
        """Read one message of a dead-letter stream."""
        # nats-py leaves the headers' dict untyped.
        headers = cast("dict[str, str] | None", raw.headers)  # pyright: ignore[reportUnknownMemberType]
        # nats-py gives a value it parsed as a non-ASCII header an email Header object: a string here.
        stored: dict[str, str] = {key: str(value) for key, value in (headers or {}).items()}

        def number(key: str) -> int:
            try:
                return int(stored.get(key, "0"))
            except ValueError:
                return 0

        try:
            failed_at = datetime.datetime.fromisoformat(stored.get(_TIME, ""))
        except ValueError:
            # (an older nats-py has no stored time on a message read from a stream.)
            stored_time: datetime.datetime | None = getattr(raw, "time", None)
            failed_at = stored_time or datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
        return cls(
            stream=stream,
            sequence=raw.seq or 0,
            name=stored.get(_NAME, ""),
            data=raw.data or b"",
            headers=_own_headers(stored),
            error_type=stored.get(_ERROR_TYPE, ""),
            error=stored.get(_ERROR, ""),
            deliveries=number(_DELIVERIES),
            failed_at=failed_at,
            stream_sequence=number(_SEQUENCE),
            subject=stored.get(_SUBJECT, ""),
            # A letter moved before the token existed: its old id.
            replay_id=stored.get(_REPLAY) or f"replay:{stream}:{raw.seq or 0}",
            cut=number(_CUT),
        )


def _stored_at(msg: Msg) -> str:
    """When ``msg`` was stored in its stream, in nanoseconds, as its acknowledgement subject says
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``,
    or with a domain and an account before the stream and a token after): the same on every
    delivery, whatever the nats-py version or the time zone."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return tokens[7]
    if len(tokens) >= 11:
        return tokens[9]
    return ""


def _own_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A message's own headers: without JetStream's (``Nats-Msg-Id``, ``Nats-Expected-Stream``,
    ...), without the ``Actorio-Dead-*`` ones, and without those whose name no client may send
    (`sendable_headers`: kept, the move, and every retry of it, would be refused, and so would a
    replay of the letter)."""
    return {k: v for k, v in sendable_headers(headers).items() if not k.startswith((DEAD, _NATS))}


def _header_text(text: str) -> str:
    """``text`` as one line of printable ASCII, at most ``_ERROR_CHARS`` characters."""
    if len(text) > _ERROR_CHARS:
        text = text[:_ERROR_CHARS] + "..."
    flat = printable(" ".join(text.split()))
    return flat.encode("ascii", "backslashreplace").decode("ascii")


class DeadLetterStreams:
    """A node's side of the dead-letter streams: sets them up, moves messages there, reads them
    back and replays them."""

    def __init__(
        self, js: JetStreamContext, *, prefix: str, timeout: float, max_payload: Callable[[], int]
    ) -> None:
        self._js = js
        self._prefix = prefix
        self._timeout = timeout
        self._max_payload = max_payload
        self._secret = secrets.token_bytes(32)
        """The key of the replay tokens this node makes: its retries of a move make the same,
        and no one else can (a duplicate is this node's earlier try only if it holds it)."""

    async def set_up(self, name: str, stream: str, *, limit: int | None, dedupe_window: float) -> None:
        """Make (or keep, or update: `made_or_kept`) the dead-letter stream of the durable name
        whose stream is ``stream``: it keeps the latest ``limit`` messages (``None``: all), until
        they are deleted."""
        config = StreamConfig(
            name=dead_letter_stream(stream),
            subjects=[dead_letter_subject(self._prefix, name)],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_msgs=limit if limit is not None else -1,
            discard=DiscardPolicy.OLD,
            duplicate_window=dedupe_window,
        )
        # Denied deletes would keep a replayed or forgotten letter for good (a mailbox, whose
        # acknowledged messages go anyway, may deny them).
        await made_or_kept(
            self._js,
            config,
            "a dead-letter stream",
            also=("deny_delete",),
            provision="Node.provision, or Node.provision_entities for an entity type",
        )

    async def move(
        self, msg: Msg, name: str, deliveries: int, error_type: str, error: str, *, owner: str = ""
    ) -> int:
        """Store ``msg`` (payload and headers) in its name's dead-letter stream, with why; its
        sequence there once the stream has it (stored once, however often this node retries it
        for one owner; a retry from another node or for another owner, or a message id taken
        first by someone else, stores it under another id). A message that the dead-letter
        headers would take past the server's ``max_payload``, or past JetStream's 64 KiB of
        headers, is cut to fit: its payload cut, or its own headers left out
        (`StoredDeadLetter.cut`). 0 if it could not be stored: the caller gives it back to its
        stream instead. ``owner`` (an activation's claim) is part of the ids: two owners' moves
        of a message never share a letter, so that one may undo its own (`forget`) without
        touching the other's."""
        metadata = msg.metadata
        stream = metadata.stream
        sequence = metadata.sequence.stream
        stored_at = _stored_at(msg) + (f":{owner}" if owner else "")
        # The same for every try of this node, and for no one else's: a keyed digest.
        digest = hmac.new(self._secret, f"{stream}:{sequence}:{stored_at}".encode(), "sha256")
        token = f"replay:{digest.hexdigest()[:32]}"
        own = _own_headers(msg.headers or {})
        headers = {
            **own,
            # The sequence and the time it was stored: what a consumer of the stream reads.
            # A retried move stores it once; a decoy stored first must guess the time.
            MSG_ID: f"{stream}:{sequence}:{stored_at}",
            _REPLAY: token,
            _NAME: name,
            _STREAM: stream,
            _SEQUENCE: str(sequence),
            _SUBJECT: _header_text(msg.subject),
            _DELIVERIES: str(deliveries),
            _ERROR_TYPE: _header_text(error_type),
            _ERROR: _header_text(error),
            _TIME: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        }
        subject, dead = dead_letter_subject(self._prefix, name), dead_letter_stream(stream)
        data, before, second_id = msg.data, str(wire_size(msg.data, own)), f"{headers[MSG_ID]}:{token}"

        def header_bytes() -> int:  # as sent at most: the longest id, the cut, nats-py's stream check
            longest = f"{second_id}:{'0' * 16}"
            return wire_size(b"", {**headers, MSG_ID: longest, _CUT: before, _EXPECTED_STREAM: dead})

        if header_bytes() > min(_MAX_HEADER_BYTES, self._max_payload()):
            headers = {key: value for key, value in headers.items() if key not in own}
            headers[_CUT] = before
        if len(data) + header_bytes() > self._max_payload():
            headers[_CUT] = before
            data = data[: max(0, self._max_payload() - header_bytes())]
        try:
            ack = await self._js.publish(subject, data, timeout=self._timeout, stream=dead, headers=headers)
            if ack.duplicate and not await self._holds(dead, ack.seq, token):
                # Someone stored something else under the id first (a guessed decoy), or
                # another node moved it before it died: stored again, under an id of its own.
                headers[MSG_ID] = second_id
                ack = await self._js.publish(
                    subject, data, timeout=self._timeout, stream=dead, headers=headers
                )
                if ack.duplicate and not await self._holds(dead, ack.seq, token):
                    # That one too, or this node's letter under it was deleted (`forget`): an
                    # id of its own, once per try (a retry may store it again).
                    headers[MSG_ID] = f"{second_id}:{secrets.token_hex(8)}"
                    ack = await self._js.publish(
                        subject, data, timeout=self._timeout, stream=dead, headers=headers
                    )
        except (nats.errors.Error, asyncio.TimeoutError):
            return 0
        return ack.seq or 0

    async def forget(self, stream: str, at: int) -> None:
        """Delete message ``at`` of the dead-letter stream of ``stream`` (a move that must not
        stand); errors are suppressed (it then stays, a letter too many)."""
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
            await self._js.delete_msg(dead_letter_stream(stream), at)

    async def _holds(self, dead: str, at: int | None, token: str) -> bool:
        """Whether the dead-letter stream's message ``at`` holds the replay token ``token``:
        this node's earlier try of this move."""
        if at is None:
            return False
        try:
            stored = await self._js.get_msg(dead, seq=at)
        except nats.js.errors.NotFoundError:
            return False
        headers = cast("dict[str, str] | None", stored.headers) or {}  # pyright: ignore[reportUnknownMemberType]
        return headers.get(_REPLAY) == token

    async def read(self, name: str, stream: str, limit: int | None) -> list[StoredDeadLetter]:
        """The messages of ``name``'s dead-letter stream, oldest first: at most ``limit`` of them
        (``None``: all). Raises ``ValueError`` if the name has no dead-letter stream."""
        found: list[StoredDeadLetter] = []
        letters = await self._letters(name, stream)
        if limit is None or limit > 0:
            async for letter in letters:
                found.append(letter)
                if len(found) == limit:
                    break
        return found

    async def _letters(self, name: str, stream: str) -> AsyncIterator[StoredDeadLetter]:
        """``name``'s dead letters, oldest first, one at a time, up to the last one stored when
        this is called (a letter stored meanwhile, a replayed message failing again, is not
        reached). ``ValueError`` (at once) if the name has no dead-letter stream."""
        dead = dead_letter_stream(stream)
        try:
            info = await self._js.stream_info(dead)
        except nats.js.errors.NotFoundError:
            raise ValueError(f"{name!r} has no dead-letter stream: it was never published durably") from None
        subject = dead_letter_subject(self._prefix, name)
        return self._walk(dead, subject, info.state.first_seq, info.state.last_seq)

    async def _walk(self, dead: str, subject: str, first: int, last: int) -> AsyncIterator[StoredDeadLetter]:
        sequence = max(first, 1)
        while sequence <= last:
            try:
                raw = await self._js.get_msg(dead, seq=sequence, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return
            if raw.seq is not None and raw.seq > last:
                return
            yield StoredDeadLetter.from_raw(dead, raw)
            sequence = (raw.seq or sequence) + 1

    async def replay(
        self,
        name: str,
        stream: str,
        sequences: Iterable[int] | None,
        store: Callable[[bytes, Mapping[str, str], str], Awaitable[Any]],
    ) -> int:
        """Store the dead letters of ``name`` (those of ``sequences``, else all those there when
        it starts) in its stream again, oldest first, each through ``store(data, headers,
        message id)``, then delete it from the dead-letter stream; the number replayed. One
        letter is in memory at a time. A letter whose payload was cut (`StoredDeadLetter.cut`)
        is left where it is: only its beginning was kept."""
        wanted = None if sequences is None else set(sequences)
        replayed = 0
        async for letter in await self._letters(name, stream):
            if (wanted is not None and letter.sequence not in wanted) or letter.cut:
                continue
            # The id makes a replay retried after a crash (stored, not yet deleted) store it once.
            await store(letter.data, letter.headers, letter.replay_id)
            await self._js.delete_msg(letter.stream, letter.sequence)
            replayed += 1
        return replayed
