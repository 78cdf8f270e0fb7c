"""Context propagation across processes: how a transport carries the context of the code that
sends (a trace's) in a message's headers, and restores it where the message arrives.

A tracer sets the propagator (`set_propagator`); a transport calls `inject` on the headers of
what it sends and opens `extracted` around the local tell of what it receives. With no
propagator (the default), `inject` does nothing and `extracted` is an empty block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext

__all__ = ["Extract", "Inject", "extracted", "inject", "set_propagator"]

Inject = Callable[[MutableMapping[str, str]], None]
"""Writes the current context into headers (for W3C trace context: ``traceparent``,
``tracestate``)."""

Extract = Callable[[Mapping[str, str]], AbstractContextManager[object]]
"""A block in which the context read from headers is the current one. The headers come from the
wire: it must ignore what it cannot read, never raise for it."""

_propagator: tuple[Inject, Extract] | None = None


def set_propagator(propagator: tuple[Inject, Extract] | None) -> tuple[Inject, Extract] | None:
    """Make ``propagator`` (``(inject, extract)``, or ``None``: none) the process's; return the
    previous one."""
    global _propagator
    previous, _propagator = _propagator, propagator
    return previous


def inject(headers: MutableMapping[str, str]) -> None:
    """Write the current context into ``headers``, if a propagator is set."""
    if _propagator is not None:
        _propagator[0](headers)


def extracted(headers: Mapping[str, str] | None) -> AbstractContextManager[object]:
    """A block in which the context that ``headers`` carry is the current one (an empty block
    without a propagator or headers)."""
    if _propagator is None or not headers:
        return nullcontext()
    return _propagator[1](headers)
