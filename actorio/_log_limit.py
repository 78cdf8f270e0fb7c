"""`LogLimit`: logging within a limit, for the lines that input from outside could multiply.

At most ``limit`` lines per ``window`` seconds (the monotonic clock); the first line after a
window in which some were left out says how many. One place for the rule, used wherever a flood
of messages would otherwise flood the log: resumed failures, refused replies, dropped messages,
durable redeliveries, connection refusals. (Dead letters keep their own log, in
``_dead_letters.py``, whose suspension line is part of its documented output.)
"""

from __future__ import annotations

import logging
import time
import weakref

__all__ = ["LogLimit", "printable", "reset_log_limits"]


def printable(text: str, keep: str = "") -> str:
    """``text`` with every character that is not printable (escape sequences, control characters,
    newlines, bidi overrides) written as its Python escape (``\\x1b``), but those in ``keep``
    (``"\\n"``: a multi-line text stays one): what came from outside, safe in a log line or on a
    terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


class LogLimit:
    """Log through ``logger`` at most ``limit`` lines per ``window`` seconds; the lines beyond are
    counted, and the count is logged with the first line of the next window (naming ``about``,
    when given: what the lines are, for a limit that is one of many on its logger).

    One thread uses a limit (the event loop's, for all of actorio's): its count is not locked."""

    __slots__ = ("__weakref__", "_about", "_left_out", "_limit", "_logged", "_logger", "_start", "_window")

    def __init__(
        self, logger: logging.Logger, *, limit: int = 10, window: float = 60.0, about: str = ""
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("LogLimit needs limit >= 1 and window > 0")
        self._about = f" ({about})" if about else ""
        self._logger = logger
        self._limit = limit
        self._window = window
        self._start: float | None = None
        self._logged = 0
        self._left_out = 0
        _every.add(self)

    def log(
        self,
        level: int,
        text: str,
        *args: object,
        exc_info: BaseException | None = None,
        through: logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> bool:
        """Log ``text % args`` at ``level`` unless this window's lines are used up (then it is only
        counted). True if it was logged. ``through``: an adapter of the same logger to log the
        line with (an actor's, whose records carry its identifier)."""
        now = time.monotonic()
        if self._start is None or now >= self._start + self._window:
            if self._left_out:
                self._logger.log(
                    level,
                    "%d more like this%s were not logged in the last %g s",
                    self._left_out,
                    self._about,
                    self._window,
                )
            self._start, self._logged, self._left_out = now, 0, 0
        if self._logged >= self._limit:
            self._left_out += 1
            return False
        self._logged += 1
        if through is None:
            self._logger.log(level, text, *args, exc_info=exc_info)
        else:
            through.log(level, text, *args, exc_info=exc_info)
        return True

    def reset(self) -> None:
        """Start a new window now (for tests)."""
        self._start, self._logged, self._left_out = None, 0, 0


_every: weakref.WeakSet[LogLimit] = weakref.WeakSet()
"""Every limit alive, for `reset_log_limits`."""


def reset_log_limits() -> None:
    """Start a new window now in every `LogLimit` (what was counted is forgotten, not logged): the
    test kit's pytest plugin does it before each test, so that what one test logged does not
    silence the next one's lines."""
    for limit in list(_every):
        limit.reset()
