"""Statistics: what an actor is doing, as data (`Actor.statistics`), and a tree of actors as
JSON-ready data (`snapshot`).

What is read off the actor costs nothing until asked: its queue, its children, its restarts and
the message it is handling now. What must be counted per message (handled, failed, time in
handlers) is counted only while `count_handlers` is on (a handler wrapper, see ``_dispatch``);
otherwise those fields are ``None``.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import functools
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._dispatch import Handler, handler_wrappers
from ._exceptions import EndMainLoop

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = ["RECENT", "ActorStatistics", "HandlerCounts", "counting_wrapper", "snapshot", "statistics"]


@dataclass(frozen=True)
class ActorStatistics:
    """What an actor (its current incarnation) is doing, at the time `Actor.statistics` was called."""

    identifier: str
    actor_class: str
    """The actor's class, ``module.QualifiedName``."""
    running: bool
    """From `Actor.start` until its mainloop ended."""
    queued: int
    """Items in its mailbox: messages told and not yet taken, and the runtime's own (timer ticks,
    watch notices)."""
    children: int
    restarts: int
    """How many times it was restarted, for a child started with `Actor.supervise` (else 0)."""
    handling: str | None
    """The class name of the message being handled now, or ``None`` while it waits."""
    handled: int | None
    """Messages handled by this incarnation (with ``failed``: those whose handler raised, but for
    `EndMainLoop`, a clean stop), counted while handler counting is on
    (`actorio.telemetry.count_handlers`), else ``None``."""
    failed: int | None
    handler_seconds: float | None
    """Seconds spent in handlers (counted as ``handled``), else ``None``."""
    handling_seconds: float | None
    """How long the current message has been handled, while counting; else ``None``."""
    handler_p50: float | None = None
    """The median of the last `RECENT` handler times, in seconds, while counting (``None`` before
    the first message, or while not counting)."""
    handler_p99: float | None = None
    """The 99th percentile of the last `RECENT` handler times, in seconds (as ``handler_p50``)."""


RECENT = 256
"""How many of an actor's last handler times its percentiles are taken from."""


class HandlerCounts:
    """An incarnation's handler counts (see `counting_wrapper`)."""

    __slots__ = ("handled", "failed", "seconds", "since", "recent")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0
        self.seconds = 0.0
        self.since: float | None = None
        self.recent: deque[float] = deque(maxlen=RECENT)


_counts: weakref.WeakKeyDictionary[Any, HandlerCounts] = weakref.WeakKeyDictionary()


def counting_wrapper(actor_class: type, message_type: type | None, handler: Handler) -> Handler:
    """A handler wrapper that counts handled and failed messages and the time spent in handlers."""
    clock = time.perf_counter

    async def counted(actor: Any, message: Any) -> Any:
        counts = _counts.get(actor)
        if counts is None:
            counts = _counts[actor] = HandlerCounts()
        counts.since = started = clock()
        try:
            return await handler(actor, message)
        except EndMainLoop:  # a clean stop, not a failure
            raise
        except Exception:
            counts.failed += 1
            raise
        finally:
            took = clock() - started
            counts.handled += 1
            counts.seconds += took
            counts.recent.append(took)
            counts.since = None

    return functools.update_wrapper(counted, handler)


def _handling(actor: Actor[Any]) -> str | None:
    mailbox = actor._actor_mailbox
    coroutine: Any = mailbox.reader
    if mailbox.waiting is not None or coroutine is None or mailbox.actor is not actor or not actor.running:
        return None
    message: Any = None
    while coroutine is not None:  # the mainloop, and `deliver` for a timer's or a notice's message
        frame = getattr(coroutine, "cr_frame", None)
        if frame is None:
            break
        local = frame.f_locals
        if "message" in local and frame.f_code.co_name in ("_actor_mainloop", "deliver"):
            message = local["message"]
        coroutine = getattr(coroutine, "cr_await", None)
    return None if message is None else type(message).__name__


def statistics(actor: Actor[Any]) -> ActorStatistics:
    """``actor``'s statistics now (see `ActorStatistics`)."""
    cls = type(actor)
    record = actor._actor_record
    counts = _counts.get(actor)
    since = None if counts is None else counts.since
    counting = counts is not None or counting_wrapper in handler_wrappers()
    return ActorStatistics(
        identifier=actor.identifier,
        actor_class=f"{cls.__module__}.{cls.__qualname__}",
        running=actor.running,
        queued=len(actor._actor_mailbox),
        children=len(actor.children),
        restarts=0 if record is None else record.restarts,
        handling=_handling(actor),
        handled=(counts.handled if counts else 0) if counting else None,
        failed=(counts.failed if counts else 0) if counting else None,
        handler_seconds=(counts.seconds if counts else 0.0) if counting else None,
        handling_seconds=None if since is None else time.perf_counter() - since,
        handler_p50=_percentile(counts, 0.5),
        handler_p99=_percentile(counts, 0.99),
    )


def _percentile(counts: HandlerCounts | None, fraction: float) -> float | None:
    if counts is None or not counts.recent:
        return None
    ordered = sorted(counts.recent)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def snapshot(root: Actor[Any]) -> dict[str, Any]:
    """The tree of actors from ``root`` as JSON-ready data: ``root``'s statistics (the fields of
    `ActorStatistics`) with ``"children"``, a list of the same for each child, in start order."""
    node: dict[str, Any] = asdict(statistics(root))
    node["children"] = [snapshot(child) for child in root.children]
    return node
