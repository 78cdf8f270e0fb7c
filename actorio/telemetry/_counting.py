"""Handler counting for `Actor.statistics`: on while the program asked for it (`count_handlers`)
or a snapshot endpoint is open (`hold`, `release`)."""

from __future__ import annotations

from actorio import lowlevel

__all__ = ["count_handlers", "hold", "release", "stop_counting_handlers"]

_asked = False
"""The program asked for counting (`count_handlers`), and did not stop it since."""
_held = 0
"""Snapshot endpoints open: each needs counting while it serves."""


def _apply() -> None:
    if _asked or _held:
        lowlevel.add_handler_wrapper(lowlevel.counting_wrapper)  # (added once, however often)
    else:
        lowlevel.remove_handler_wrapper(lowlevel.counting_wrapper)


def count_handlers() -> None:
    """Count, for every actor, the messages handled and failed and the time spent in handlers, as
    `Actor.statistics` reports them (``None`` there while counting is off). Costs a wrapper
    call per message; actors started from now on are counted in full (see
    ``actorio.lowlevel.add_handler_wrapper``)."""
    global _asked
    _asked = True
    _apply()


def stop_counting_handlers() -> None:
    """Stop counting (see `count_handlers`), unless a snapshot endpoint is open: it goes off with
    the last one."""
    global _asked
    _asked = False
    _apply()


def hold() -> None:
    """A snapshot endpoint opens: counting is on until it is released."""
    global _held
    _held += 1
    _apply()


def release() -> None:
    """A snapshot endpoint closed (see `hold`)."""
    global _held
    _held -= 1
    _apply()
