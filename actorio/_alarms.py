"""Alarms without a collector: plain log lines, always on, that cost the message path nothing.

- **A handler holding the event loop.** A watchdog thread per event loop (started with the
  loop's first actor) posts a beat to the loop every half threshold (20 a second by default); a
  beat not run within the threshold means the loop is held (a hold is seen once it lasts 1.5
  thresholds at most). The thread then reads the loop thread's frames:
  if an actor's mainloop is in them, one WARNING names the actor, its class and the message
  type, once per actor class and message type a minute. Nothing runs per message.
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
import logging
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
    and message local variables."""
    global last_loop
    last_loop = loop
    if alarm_settings.slow_handler is None:
        return
    with _lock:
        if loop in _watched:
            return
        watch = _watched[loop] = _LoopWatch(loop, threading.get_ident(), codes)
    watch.start()


class _LoopWatch(threading.Thread):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, loop_thread: int, codes: dict[CodeType, tuple[str, str]]
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
        while True:
            threshold = alarm_settings.slow_handler
            time.sleep(threshold / 2 if threshold else 0.05)
            loop = self._loop()
            if loop is None or loop.is_closed():
                return
            now = time.monotonic()
            posted = self._posted
            if posted is None:
                self._posted = now
                try:
                    loop.call_soon_threadsafe(self._beat)
                except RuntimeError:  # closed meanwhile
                    return
            elif threshold is not None and not self._reported and now - posted > threshold:
                self._reported = True
                if loop.is_running():
                    self._report(now - posted)
            del loop

    def _report(self, held: float) -> None:
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)  # pyright: ignore[reportPrivateUsage]
        found: tuple[Any, Any] | None = None
        while frame is not None:
            names = self._codes.get(frame.f_code)
            if names is not None:
                local = frame.f_locals
                found = (local.get(names[0]), local.get(names[1]))
                break
            frame = frame.f_back
        del frame
        if found is None:
            return
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
