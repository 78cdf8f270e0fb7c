"""Alarms without a collector: plain log lines, always on, that cost the message path nothing.

- **A handler holding the event loop.** A watchdog thread per event loop (started with the
  loop's first actor) looks at the loop every half threshold (20 times a second by default):
  unless it waits for I/O, it posts a beat; a beat not run within the threshold means the loop
  is held. The thread then reads the loop thread's frames: if an actor's handler is running
  (its mainloop is at the line that calls it), and the same handler, with the same message, is
  seen at every look (ten a threshold) for half the threshold, one WARNING names the actor, its
  class and the message type, once per actor class and message type a minute (a burst of short handlers in
  one turn of the loop, or the runtime's own code, is nobody's to blame). A handler holding
  the loop for about 2.5 thresholds is always reported. Nothing runs per message.
- **A mailbox growing.** When the mainloop starts a batch longer than its throughput (a rare
  branch: at most once per ``mailbox_throughput`` messages), the queue's length is compared
  with the thresholds; each is warned once per mailbox.
- **A restart.** A supervised incarnation that fails and is restarted logs one WARNING line with
  the error; its traceback goes at the level set in `AlarmSettings` (DEBUG unless changed). At
  most ten such lines a minute for one actor class (the lines beyond are counted, and the count
  logged with the next line): a failing message told to many entities restarts as many.
"""

from __future__ import annotations

import asyncio
import dis
import logging
import operator
import sys
import threading
import time
import weakref
from dataclasses import dataclass, replace
from types import CodeType, EllipsisType, FrameType
from typing import Any

from ._dead_letters import shorten

__all__ = ["AlarmSettings", "alarm_settings", "configure_alarms", "mailbox_depth", "watch_loop"]

logger = logging.getLogger("actorio.alarms")


@dataclass(frozen=True)
class AlarmSettings:
    """What the always-on alarms report, and when (see `configure_alarms`)."""

    slow_handler: float | None = 0.1
    """Seconds a handler may hold the event loop before it is reported (``None``: never)."""
    mailbox_depths: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    """Queue lengths past which a mailbox is warned about, once each."""
    restart_traceback_level: int = logging.DEBUG
    """The level at which the traceback of a failure that a restart answers is logged (its one
    WARNING line is logged whatever this is)."""
    repeat_after: float = 60.0
    """Seconds before the same slow-handler alarm (actor class, message type) is logged again."""


alarm_settings = AlarmSettings()
"""The process's alarm settings."""

first_depth = min(alarm_settings.mailbox_depths)
"""The lowest mailbox threshold: where a new mailbox's first alarm is."""

last_loop: asyncio.AbstractEventLoop | None = None
"""The loop whose watchdog was last asked for: an actor started in it skips `watch_loop`."""


def configure_alarms(
    *,
    slow_handler: float | EllipsisType | None = ...,
    mailbox_depths: tuple[int, ...] | EllipsisType = ...,
    restart_traceback_level: int | EllipsisType = ...,
    repeat_after: float | EllipsisType = ...,
) -> AlarmSettings:
    """Change the alarm settings given (the others are kept) and return the previous ones.

    ``slow_handler``: seconds a handler may hold the event loop (``None``: no watchdog for the
    loops started from now on); ``mailbox_depths``: the queue lengths warned about (mailboxes made
    from now on); ``restart_traceback_level``: the level of a restarted failure's traceback;
    ``repeat_after``: seconds before one slow-handler alarm is repeated.
    """
    global alarm_settings, first_depth, last_loop
    previous = alarm_settings
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("slow_handler", slow_handler),
            ("mailbox_depths", mailbox_depths),
            ("restart_traceback_level", restart_traceback_level),
            ("repeat_after", repeat_after),
        )
        if value is not ...
    }
    depths = changes.get("mailbox_depths", previous.mailbox_depths)
    if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError("mailbox_depths must be one or more ints >= 1")
    threshold = changes.get("slow_handler", previous.slow_handler)
    if threshold is not None and threshold <= 0:
        raise ValueError("slow_handler must be > 0 seconds, or None")
    alarm_settings = replace(previous, **changes)
    first_depth = min(depths)
    last_loop = None
    return previous


# -- mailbox depth ------------------------------------------------------------------------------


def mailbox_depth(identifier: str, depth: int, alarm: int) -> int:
    """Warn about each threshold from ``alarm`` (the next one to warn about) up to ``depth``, the
    queue's length; return the next threshold above ``depth`` (``sys.maxsize`` if none)."""
    for threshold in sorted(alarm_settings.mailbox_depths):
        if alarm <= threshold <= depth:
            logger.warning(
                "mailbox of %s passed %d queued messages (%d now): its senders outpace it",
                identifier,
                threshold,
                depth,
            )
    return min((t for t in alarm_settings.mailbox_depths if t > depth), default=sys.maxsize)


# -- the event loop held ------------------------------------------------------------------------

_watched: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWatch] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def watch_loop(loop: asyncio.AbstractEventLoop, codes: dict[CodeType, tuple[str, str]]) -> None:
    """Start the watchdog of ``loop`` (running in this thread) unless it runs already.

    ``codes`` maps the code objects whose frames handle a message to the names of their actor
    and message local variables; the frame calls its handler through a local named ``handler``
    (the lines where it does are found here, once)."""
    global last_loop
    last_loop = loop
    if alarm_settings.slow_handler is None:
        return
    with _lock:
        if loop in _watched:
            return
        handling = {code: (*names, handler_lines(code)) for code, names in codes.items()}
        watch = _watched[loop] = _LoopWatch(loop, threading.get_ident(), handling)
    watch.start()


def handler_lines(code: CodeType) -> frozenset[int]:
    """The lines of ``code`` that call its local ``handler``: where a frame of it that has a
    callee is running the handler (and not the runtime's own code around it)."""
    lines: set[int] = set()
    line: int | None = None
    called: int | None = None  # the line where ``handler`` was loaded, until its call or not
    for instruction in dis.get_instructions(code):
        if sys.version_info >= (3, 11):
            line = instruction.positions.lineno if instruction.positions else line
        elif instruction.starts_line is not None:
            line = instruction.starts_line
        name = instruction.opname
        if called is not None and name.startswith(("CALL", "PRECALL")) and name != "CALL_INTRINSIC_1":
            lines.add(called)
            called = None
        elif called is not None and name != "PUSH_NULL" and "LOAD_FAST" not in name:
            called = None  # loaded for something else (``handler is None``)
        argval = instruction.argval
        if "LOAD_FAST" in name and "handler" in (argval if isinstance(argval, tuple) else (argval,)):
            called = line
    return frozenset(lines)


CONFIRM = 10
"""While a handler is suspected, the watchdog looks again every tenth of the threshold."""
CONFIRM_FOR = 0.5
"""A handler caught holding the loop is reported once it has been seen running, with the same
message, at every look for half the threshold: a burst of short handlers run in one turn of the
loop is no single handler's doing, nor is one that the machine paused for a few milliseconds."""


class _LoopWatch(threading.Thread):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int,
        codes: dict[CodeType, tuple[str, str, frozenset[int]]],
    ) -> None:
        super().__init__(name="actorio-loop-watch", daemon=True)
        self._loop = weakref.ref(loop)
        self._loop_thread = loop_thread
        self._codes = codes
        self._posted: float | None = None
        self._reported = False
        self._last: dict[tuple[str, str], float] = {}

    def _beat(self) -> None:
        self._posted = None
        self._reported = False

    def run(self) -> None:
        suspect: tuple[Any, Any] | None = None  # the handler caught at the last look, this hold
        since = 0.0  # when it was first caught, at the looks since
        while True:
            threshold = alarm_settings.slow_handler
            pause = threshold / 2 if threshold else 0.05
            time.sleep(pause / CONFIRM * 2 if suspect is not None else pause)
            loop = self._loop()
            if loop is None or loop.is_closed():
                return
            now = time.monotonic()
            posted = self._posted
            if posted is None:
                suspect = None
                # Waiting for I/O: not held, and no beat (it would wake the loop: a mock clock
                # jumps only once the loop has been idle for a while).
                if not self._idle():
                    self._posted = now
                    try:
                        loop.call_soon_threadsafe(self._beat)
                    except RuntimeError:  # closed meanwhile
                        return
            elif threshold is not None and not self._reported and now - posted > threshold:
                found = self._handling() if loop.is_running() else None
                same = suspect is not None and found is not None and all(map(operator.is_, found, suspect))
                if not same:
                    suspect, since = found, now
                elif found is not None and now - since >= threshold * CONFIRM_FOR:
                    self._reported = True
                    self._report(found, now - posted)
                    suspect = None  # reported: back to the usual pace until the next hold
            del loop

    def _top(self) -> FrameType | None:
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)  # pyright: ignore[reportPrivateUsage]
        return frame

    def _idle(self) -> bool:
        """The loop's thread waits in its selector (a selector event loop with nothing to run)."""
        frame = self._top()
        if frame is None:
            return False
        code = frame.f_code
        return code.co_name == "select" and code.co_filename.endswith("selectors.py")

    def _handling(self) -> tuple[Any, Any] | None:
        """The actor and the message whose handler runs now in the loop's thread, if one does:
        the innermost frame that handles messages, stopped at a line that runs its handler."""
        frame = self._top()
        while frame is not None:
            names = self._codes.get(frame.f_code)
            if names is not None:
                actor_name, message_name, lines = names
                if frame.f_lineno not in lines:
                    return None  # the runtime's own code, between two messages
                local = frame.f_locals
                return (local.get(actor_name), local.get(message_name))
            frame = frame.f_back
        return None

    def _report(self, found: tuple[Any, Any], held: float) -> None:
        actor, message = found
        actor_class = type(actor).__qualname__
        message_type = type(message).__qualname__
        key = (actor_class, message_type)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < alarm_settings.repeat_after:
            return
        self._last[key] = now
        try:
            identifier = shorten(str(actor.identifier))
        except Exception:  # a half-made actor: its class names it well enough
            identifier = actor_class
        logger.warning(
            "%s (%s) has held the event loop for %.0f ms handling %s: a handler that blocks stops "
            "every actor of the process",
            identifier,
            actor_class,
            held * 1000,
            message_type,
        )
