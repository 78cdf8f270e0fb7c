"""Dead letters: messages that reached no handler, recorded, counted and logged without flooding.

A message is a dead letter when it is told to an actor that has stopped (or is dropped from its
mailbox when it stops), when its handler failed (recorded with the error), when no handler takes
it, or when it is told to something that cannot take it (a message without a sender, an ask
that is already over). Asks are not dead letters: their failure is raised at the asker.

What a record keeps is bounded: a raw payload (bytes or text from the wire) longer than
``PREVIEW_BYTES`` is kept as a `PayloadPreview` (its first bytes and its size), an invalid
payload's error is kept without its traceback (whose frames would keep the payload alive), and
every log line is cut to ``LOG_CHARS`` characters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._log_limit import printable

__all__ = ["DeadLetter", "DeadLetters", "PayloadPreview", "dead_letters"]

dead_letters_logger = logging.getLogger("actorio.dead_letters")

Reason = Literal["stopped", "failed", "unhandled", "no-sender", "late-reply", "invalid", "overflow"]

PREVIEW_BYTES = 1024
"""How much of a raw payload a dead-letter record keeps."""

LOG_CHARS = 500
"""The longest a message or an error is written in a dead-letter log line."""


@dataclass(frozen=True)
class PayloadPreview:
    """What a dead-letter record keeps of a raw payload longer than ``PREVIEW_BYTES``: its first
    bytes (``head``, text encoded as UTF-8) and its whole ``size`` in bytes."""

    head: bytes
    size: int

    def __repr__(self) -> str:
        return f"<payload of {self.size} bytes: {self.head!r}...>"


def preview(payload: Any) -> Any:
    """``payload`` itself, unless it is raw bytes or text longer than ``PREVIEW_BYTES``: then a
    `PayloadPreview` of it."""
    raw: bytes | bytearray
    if isinstance(payload, str):
        if len(payload) <= PREVIEW_BYTES // 4:  # at most 4 bytes a character: short enough
            return payload
        raw = payload.encode("utf-8", "surrogateescape")
    elif isinstance(payload, (bytes, bytearray)):
        raw = payload
    else:
        return payload
    if len(raw) <= PREVIEW_BYTES:
        return payload
    return PayloadPreview(bytes(raw[:PREVIEW_BYTES]), len(raw))


def shorten(text: str) -> str:
    """``text`` cut to ``LOG_CHARS`` characters, saying how long it was."""
    if len(text) <= LOG_CHARS:
        return text
    return f"{text[:LOG_CHARS]}... ({len(text)} characters)"


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: the message, who it was for, why it was not handled, and when."""

    message: Any
    """The message; for a raw payload longer than ``PREVIEW_BYTES``, a `PayloadPreview`."""
    recipient: str
    """The identifier of the actor (or reference) it was told to."""
    reason: Reason
    """``stopped``: the recipient had stopped, or stopped before handling it; ``failed``: its
    handler raised ``error``; ``unhandled``: no handler takes its type; ``no-sender``: told to the
    sender of a message created without one; ``late-reply``: a reply to an ask already over;
    ``invalid``: a wire payload its protocol refused (``message`` is the payload, ``error`` the
    `InvalidPayload`); ``overflow``: dropped on arrival, the receiver's buffers being full."""
    error: BaseException | None
    time: float
    """The event loop's clock when it was recorded (``time.monotonic()`` outside a loop)."""

    def __str__(self) -> str:
        because = f": {shorten(repr(self.error))}" if self.error is not None else ""
        return f"{shorten(repr(self.message))} for {self.recipient} ({self.reason}{because})"


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class DeadLetters:
    """The record of dead letters: the latest ``max_records`` of them, and counts of them all.

    Logging (logger ``actorio.dead_letters``, level INFO) is limited: at most ``log_limit`` lines
    per ``log_window`` seconds, then one line saying that logging is suspended; the next line
    after the window says how many were not logged. The counts are always exact.
    """

    def __init__(self, max_records: int = 1000, log_limit: int = 10, log_window: float = 60.0) -> None:
        self.records: deque[DeadLetter] = deque(maxlen=max_records)
        self.counts: Counter[str] = Counter()
        """How many dead letters there were, by reason, since the last `clear`."""
        self.log_limit = log_limit
        self.log_window = log_window
        self._window_start: float | None = None
        self._logged = 0
        self._suppressed = 0
        self._listeners: list[Callable[[DeadLetter], None]] = []

    def add_listener(self, listener: Callable[[DeadLetter], None]) -> None:
        """Call ``listener(letter)`` for every dead letter from now on (a test kit's hook)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[DeadLetter], None]) -> None:
        """Stop calling ``listener``; nothing happens if it was not added."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def total(self) -> int:
        """How many dead letters there were since the last `clear`."""
        return sum(self.counts.values())

    @property
    def max_records(self) -> int:
        """How many dead letters `records` keeps (the latest ones)."""
        maxlen = self.records.maxlen
        assert maxlen is not None
        return maxlen

    @max_records.setter
    def max_records(self, value: int) -> None:
        self.records = deque(self.records, maxlen=value)

    def record(
        self, message: Any, recipient: str, reason: Reason, error: BaseException | None = None
    ) -> DeadLetter:
        """Record a dead letter, count it, and log it unless the log limit is reached. A raw payload
        is kept as a `preview`; the error of an invalid payload is kept without its traceback."""
        now = _now()
        if reason == "invalid" and error is not None:
            error.__traceback__ = None  # its frames hold the payload
            error.__context__ = None
        letter = DeadLetter(preview(message), recipient, reason, error, now)
        self.records.append(letter)
        self.counts[reason] += 1
        self._log(letter, now)
        for listener in self._listeners:
            listener(letter)
        return letter

    def of(self, recipient: str | None = None, reason: Reason | None = None) -> list[DeadLetter]:
        """The recorded dead letters for ``recipient`` and/or of ``reason``, oldest first."""
        return [
            letter
            for letter in self.records
            if (recipient is None or letter.recipient == recipient)
            and (reason is None or letter.reason == reason)
        ]

    def clear(self) -> None:
        """Forget the records and the counts, and reset the log limit."""
        self.records.clear()
        self.counts.clear()
        self._window_start = None
        self._logged = 0
        self._suppressed = 0

    def _log(self, letter: DeadLetter, now: float) -> None:
        start = self._window_start
        # A clock that went back (another event loop) starts a new window too.
        if start is None or now >= start + self.log_window or now < start:
            if self._suppressed:
                dead_letters_logger.info(
                    "%d more dead letters were not logged in the last %g s", self._suppressed, self.log_window
                )
            self._window_start = now
            self._logged = 0
            self._suppressed = 0
        if self._logged >= self.log_limit:
            self._suppressed += 1
            return
        self._logged += 1
        because = f": {shorten(repr(letter.error))}" if letter.error is not None else ""
        dead_letters_logger.info(
            "dead letter (%s) for %s: %s%s",
            letter.reason,
            shorten(printable(letter.recipient)),
            shorten(repr(letter.message)),
            because,
        )
        if self._logged == self.log_limit:
            dead_letters_logger.info(
                "%d dead letters logged: more are counted but not logged for %g s",
                self.log_limit,
                self.log_window,
            )


dead_letters = DeadLetters()
"""The process's dead letters; ``dead_letters.counts``, ``.records``, ``.of(...)``, ``.clear()``."""
