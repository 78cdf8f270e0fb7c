"""Context propagation across processes: how a transport carries the context of the code that
sends (a trace's) in a message's headers, and restores it where the message arrives.

A tracer sets the propagator (`set_propagator`); a transport calls `inject` on the headers of
what it sends and opens `extracted` around the local tell of what it receives. With no
propagator (the default), `inject` does nothing and `extracted` is an empty block.

A message from the wire is handled in the context its headers carry, or in a new one (a new
trace) if they carry none: never in the context current where it arrives, which is no sender's
(nats-py runs a subscription's callbacks in a task that copied the context of the code that
subscribed, a handler of another actor say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from types import MappingProxyType

__all__ = ["Extract", "Inject", "extracted", "inject", "propagating", "set_propagator"]

Inject = Callable[[MutableMapping[str, str]], None]
"""Writes the current context into headers (for W3C trace context: ``traceparent``,
``tracestate``)."""

Extract = Callable[[Mapping[str, str]], AbstractContextManager[object]]
"""A block in which the context read from headers is the current one; headers that carry none it
can read (no headers, or a malformed one) give a new, empty context, never the current one. The
headers come from the wire: it must ignore what it cannot read, never raise for it."""

_propagator: tuple[Inject, Extract] | None = None
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


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


def propagating() -> bool:
    """Whether a propagator is set: without one, `extracted` is an empty block, which a transport
    may skip (and its cost) for a message without headers."""
    return _propagator is not None


def extracted(headers: Mapping[str, str] | None) -> AbstractContextManager[object]:
    """A block in which the context that ``headers`` carry is the current one: with a
    propagator, ``headers`` that carry none it can read (``None`` included) start a new one (the
    message's handling is the root of a new trace), whatever context is current around the
    block. An empty block without a propagator."""
    if _propagator is None:
        return nullcontext()
    return _propagator[1](headers or _NO_HEADERS)
