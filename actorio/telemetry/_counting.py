"""Handler counting for `Actor.statistics`: on and off."""

from __future__ import annotations

from actorio import lowlevel

__all__ = ["count_handlers", "stop_counting_handlers"]


def count_handlers() -> None:
    """Count, for every actor, the messages handled and failed and the time spent in handlers, as
    `Actor.statistics` reports them (``None`` there while counting is off). Costs a wrapper
    call per message; actors started from now on are counted in full (see
    ``actorio.lowlevel.add_handler_wrapper``)."""
    lowlevel.add_handler_wrapper(lowlevel.counting_wrapper)


def stop_counting_handlers() -> None:
    """Stop counting (see `count_handlers`)."""
    lowlevel.remove_handler_wrapper(lowlevel.counting_wrapper)
