"""Dead letters: messages that reached no handler, recorded, counted and logged without flooding.

A message is a dead letter when it is told to an actor that has stopped (or is dropped from its
mailbox when it stops), when its handler failed (recorded with the error), when no handler takes
it, or when it is told to something that cannot take it (a message without a sender, an ask
that is already over). Asks are not dead letters: their failure is raised at the asker.

What a record keeps is bounded: a raw payload (bytes or text from the wire) longer than
``PREVIEW_BYTES`` is kept as a `PayloadPreview` (its first bytes and its size), an invalid
payload's error is kept without its traceback (whose frames would keep the payload alive), a
failed handler's error keeps its traceback without the frames' local variables (which would keep
the failed incarnation and its state alive as long as the record), and every log line is cut to
``LOG_CHARS`` characters.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dis
import inspect
import logging
import sys
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal

from ._log_limit import printable

__all__ = ["DeadLetter", "DeadLetters", "PayloadPreview", "dead_letters"]

dead_letters_logger = logging.getLogger("actorio.dead_letters")

Reason = Literal["stopped", "failed", "unhandled", "no-sender", "late-reply", "invalid", "overflow"]

PREVIEW_BYTES = 1024
"""How much of a raw payload a dead-letter record keeps."""

LOG_CHARS = 500
"""The longest a message or an error is written in a dead-letter log line."""

CHAINED_ERRORS = 100
"""How many errors of a chain (causes and contexts) `forget_locals` goes through, at most."""


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


def forget_locals(error: BaseException) -> None:
    """Clear the local variables of the frames in ``error``'s traceback, and in those of its
    causes and contexts: the traceback still says where each frame was (files, lines, what
    ``traceback`` prints), but no longer keeps what the frames held (a handler's ``self``, the
    message, the state) alive. A frame still running (the mainloop that caught the error) is
    cleared when its task is done: a frame that a traceback holds keeps its variables after it
    returned. A frame that may be suspended (another task's, which caught the error and handed
    it on) is left as it is: clearing it would close its coroutine.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    running: list[FrameType] = []
    while pending and len(seen) < CHAINED_ERRORS:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        trace = current.__traceback__
        while trace is not None:
            frame = trace.tb_frame
            trace = trace.tb_next
            if _may_be_suspended(frame):
                continue
            try:
                frame.clear()
            except RuntimeError:  # running (or, from Python 3.13, suspended)
                running.append(frame)
        pending.extend(chained for chained in (current.__cause__, current.__context__) if chained is not None)
        if sys.version_info >= (3, 11) and isinstance(current, builtins.BaseExceptionGroup):
            pending.extend(current.exceptions)  # a task group's errors, each with its traceback
    if running:
        clear_when_done(running)


_CLEAR_CLOSES: bool = sys.version_info < (3, 13)
"""Whether `frame.clear` closes a suspended generator (it raises `RuntimeError` from 3.13)."""
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]
_YIELD_FROM = dis.opmap.get("YIELD_FROM")  # Python 3.10: an ``await`` suspends just before it


def _may_be_suspended(frame: FrameType) -> bool:
    """True for a generator's or coroutine's frame that stands where such a frame is suspended.

    Before Python 3.13, `frame.clear` on a suspended frame closes its generator (from 3.13 it
    raises `RuntimeError`). A frame the error went through has returned, and stands where the
    error left it: never at a suspension point, but for an error thrown into a bare ``yield``
    (such a frame is then kept, with its variables).
    """
    if not _CLEAR_CLOSES or not frame.f_code.co_flags & _SUSPENDABLE:
        return False
    code, at = frame.f_code.co_code, frame.f_lasti
    if not 0 <= at < len(code):
        return True
    if code[at] == _YIELD_VALUE:
        return True
    return _YIELD_FROM is not None and at + 2 < len(code) and code[at + 2] == _YIELD_FROM


_running_frames: weakref.WeakKeyDictionary[asyncio.Task[Any], FrameType] = weakref.WeakKeyDictionary()
"""The frame of each task to clear when it is done (see `clear_when_done`)."""


def clear_when_done(frames: list[FrameType]) -> None:
    """Clear the current task's own frame (its coroutine's: an actor's mainloop), if it is one
    of ``frames``, when the task is done. Others are left as they are: a generator's, or a
    coroutine's that another task runs, may outlive this task, and is suspended then; and a
    long-lived task would hold a frame for each error recorded inside it."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop: the frames are those of a thread's stack
        return
    own = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    if task is None or own is None or own not in frames or task in _running_frames:
        return  # (once per task: an actor that fails and resumes again and again adds nothing)
    _running_frames[task] = own
    task.add_done_callback(_clear_frame_of)


def _clear_frame_of(task: asyncio.Task[Any]) -> None:
    frame = _running_frames.pop(task, None)
    if frame is not None and not _may_be_suspended(frame):
        with contextlib.suppress(RuntimeError):
            frame.clear()


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
        is kept as a `preview`; the error of an invalid payload is kept without its traceback, any
        other error without the local variables of its traceback's frames (`forget_locals`)."""
        now = _now()
        if error is not None:
            if reason == "invalid":
                error.__traceback__ = None  # its frames hold the payload
                error.__context__ = None
            else:
                forget_locals(error)
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
