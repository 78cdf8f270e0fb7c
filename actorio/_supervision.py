"""Supervision: how a parent restarts the children it supervises, after Erlang/OTP and Akka.

- `SupervisorStrategy` (the parent's): which children restart together (``one_for_one``,
  ``one_for_all``, ``rest_for_one``) and the restart intensity (at most ``max_restarts``
  within ``within`` seconds, else the parent gives up and fails).
- `ChildSpec` (each child's): how to make an incarnation, its restart type (``permanent``,
  ``transient``, ``temporary``), its `Backoff`, and a decision per exception type
  (``restart``, ``resume``, ``stop``, ``escalate``).

This module holds the policies, the bookkeeping of one supervised child, and the decisions as
pure functions (`directive_on_failure`, `outcome_of_end`); the runtime that acts on them (starting,
restarting and stopping children) is `Supervisor`, in ``_supervisor.py``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._exceptions import EndMainLoop, RestartIntensityExceeded

if TYPE_CHECKING:
    from ._actor import Actor
    from ._mailbox import Mailbox
    from ._ref import ActorRef

__all__ = ["Backoff", "ChildSpec", "Decider", "Directive", "RestartType", "Strategy", "SupervisorStrategy"]

A_co = TypeVar("A_co", bound="Actor[Any]", covariant=True)

Directive = Literal["restart", "resume", "stop", "escalate"]
"""What a supervised child does when a handler fails:

- ``restart``: a new incarnation takes over the mailbox (as the restart type allows);
- ``resume``: the same incarnation goes on with its next message, state kept;
- ``stop``: the child stops for good (its queued messages become dead letters);
- ``escalate``: the child stops and its supervisor fails with the same error.

The failed message is never retried: it is a dead letter, recorded with the error.
"""

RestartType = Literal["permanent", "transient", "temporary"]
"""When a child that ended is restarted: ``permanent`` always (even after a clean stop),
``transient`` only after a failure, ``temporary`` never."""

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""Which children restart when one must: only it, all of them, or it and those started after it."""

DIRECTIVES: tuple[Directive, ...] = ("restart", "resume", "stop", "escalate")
"""Every `Directive`, in the order the docs list them."""

Decider = Callable[[BaseException], Directive] | Mapping[type[BaseException], Directive]
"""A decision per exception: a function, or a mapping looked up along the error's MRO.

A mapping's values are checked where it is given (`ChildSpec`, `SupervisorStrategy`): a value
that is no `Directive` is a ``ValueError``. A function that raises, or returns something other
than a `Directive`, fails its supervisor (as an ``escalate`` would, with that error rather than
the child's: see `decide`)."""

Outcome = Literal["restart", "stop", "escalate"]
"""How the end of a supervised incarnation counts: replaced by a restart, stopped for good, or
stopped with its supervisor failing too."""


def default_decider(error: BaseException) -> Directive:
    """Restart after an ``Exception``; escalate anything else (``KeyboardInterrupt``, ...)."""
    return "restart" if isinstance(error, Exception) else "escalate"


def _allowed() -> str:
    return ", ".join(repr(directive) for directive in DIRECTIVES)


def check_decider(decider: Decider | None, owner: str) -> None:
    """``ValueError`` if ``decider`` is a mapping with a value that is no `Directive`."""
    if decider is None or callable(decider):
        return
    for kind, directive in decider.items():
        if directive not in DIRECTIVES:
            name = getattr(kind, "__qualname__", repr(kind))
            raise ValueError(
                f"{owner} maps {name} to {directive!r}, which is no supervision directive: "
                f"use one of {_allowed()}"
            )


def decide(decider: Decider | None, error: BaseException) -> Directive:
    """The directive for ``error``: the nearest class in its MRO that a mapping names (else the
    default), or what a function returns. A function that returns something else than a
    `Directive` is a ``ValueError`` (from ``error``) naming what it returned; one that raises
    raises here."""
    if decider is None:
        return default_decider(error)
    if callable(decider):
        decided: object = decider(error)  # checked: an untyped decider may return anything
        for allowed in DIRECTIVES:
            if decided == allowed:
                return allowed
        name = getattr(decider, "__qualname__", repr(decider))
        raise ValueError(
            f"the supervision decider {name} returned {decided!r} for {type(error).__name__}, "
            f"which is no supervision directive: it must return one of {_allowed()}"
        ) from error
    for kind in type(error).__mro__:
        directive = decider.get(kind)
        if directive is not None:
            return directive
    return default_decider(error)


def directive_on_failure(decider: Decider | None, error: Exception) -> Directive | None:
    """What a supervised child does when a handler failed with ``error`` on a told message:
    ``None`` if its mainloop must end (``EndMainLoop``), else the decider's directive (a supervisor
    that gave up, `RestartIntensityExceeded`, is restarted rather than resumed: it has no children
    left to go on with)."""
    if isinstance(error, EndMainLoop):
        return None
    directive = decide(decider, error)  # raises if the decider fails
    if directive == "resume" and isinstance(error, RestartIntensityExceeded):
        return "restart"
    return directive


def outcome_of_end(record: SupervisedChild, reason: BaseException | None) -> Outcome:
    """How a supervised incarnation's end counts, from its record and why it ended (``reason``:
    ``None`` for a clean end)."""
    if record.state in ("stopping", "gone"):
        return "stop"
    if record.state == "restarting":
        return "restart"  # stopped by its supervisor, to restart with a sibling
    restart = record.spec.restart
    if reason is None:
        return "restart" if restart == "permanent" else "stop"
    if isinstance(reason, asyncio.CancelledError):
        # Cancelled by someone other than its supervisor: an abnormal end, as a killed process is
        # in OTP (never escalated: the supervisor would end up cancelled, silently).
        return "stop" if restart == "temporary" else "restart"
    directive = record.directive or decision(record, reason)
    if directive == "escalate":
        return "escalate"
    if directive == "stop" or restart == "temporary":
        return "stop"
    return "restart"


def decision(record: SupervisedChild, error: BaseException) -> Directive:
    """`decide` for a supervised child: if its decider fails, the directive is ``escalate``,
    and the decider's error is noted (``record.fault``) for the supervisor to fail with."""
    try:
        return decide(record.decider, error)
    except Exception as fault:
        record.fault = fault
        return "escalate"


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``min_delay * factor ** n`` capped at ``max_delay`` for the
    ``n``-th restart in a row (from 0), stretched by up to ``jitter`` (a fraction from 0 to 1:
    0.2 adds between 0 % and 20 %). After an incarnation ran ``reset_after`` seconds without failing, the
    count starts again from 0. ``rng`` draws the jitter (pass a seeded ``random.Random`` for
    reproducible delays)."""

    min_delay: float
    max_delay: float
    factor: float = 2.0
    jitter: float = 0.0
    reset_after: float | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_delay < 0 or self.max_delay < self.min_delay:
            raise ValueError("Backoff needs 0 <= min_delay <= max_delay")
        if self.factor < 1:
            raise ValueError(f"Backoff needs factor >= 1, not {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(
                f"Backoff needs 0 <= jitter <= 1 (a fraction: 0.2 adds up to 20 %), not {self.jitter!r}"
            )

    def delay(self, attempt: int) -> float:
        """The delay before restart number ``attempt`` (0 for the first in a row)."""
        base = min(self.max_delay, self.min_delay * self.factor**attempt)
        if self.jitter:
            base *= 1 + self.jitter * self.rng.random()
        return base


@dataclass(frozen=True)
class SupervisorStrategy:
    """How an actor supervises the children it starts with ``supervise`` (the class attribute
    ``Actor.supervisor_strategy``).

    ``strategy``: which children restart when one must. ``max_restarts`` within ``within``
    seconds (the loop's clock) is the restart intensity: one restart more and the supervisor
    stops all its children, in reverse start order, and fails with `RestartIntensityExceeded`.
    ``decider`` and ``backoff`` are the defaults for children supervised without their own.
    """

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    within: float = 5.0
    decider: Decider | None = None
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if self.strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
            raise ValueError(f"unknown supervision strategy {self.strategy!r}")
        if self.max_restarts < 0 or self.within <= 0:
            raise ValueError("SupervisorStrategy needs max_restarts >= 0 and within > 0")
        check_decider(self.decider, "SupervisorStrategy's decider")


@dataclass(frozen=True)
class ChildSpec(Generic[A_co]):
    """A supervised child: how to make each incarnation and how it is restarted.

    ``factory`` makes a new incarnation (an actor class, a ``functools.partial``, a lambda); it
    runs at the first start and at every restart. ``name`` is every incarnation's identifier
    (default: the first incarnation's). ``on_failure`` and ``backoff`` default to the
    supervisor's strategy; ``stop_timeout`` (seconds) bounds how long stopping the child may take
    before it is cancelled (``None``: no bound).
    """

    factory: Callable[[], A_co]
    name: str | None = None
    restart: RestartType = "permanent"
    on_failure: Decider | None = None
    backoff: Backoff | None = None
    stop_timeout: float | None = 5.0

    def __post_init__(self) -> None:
        if self.restart not in ("permanent", "transient", "temporary"):
            raise ValueError(f"unknown restart type {self.restart!r}")
        check_decider(self.on_failure, "on_failure")


class SupervisedChild:
    """The supervisor's record of one child: its spec, its mailbox and reference (which outlive
    incarnations), the incarnation running now, and its restart bookkeeping."""

    __slots__ = (
        "spec",
        "decider",
        "backoff",
        "mailbox",
        "ref",
        "actor",
        "state",
        "reason",
        "directive",
        "fault",
        "outcome",
        "restarted",
        "attempts",
        "restarts",
        "started_at",
        "pending",
        "group",
        "strategy",
        "restart_log",
    )

    def __init__(
        self, spec: ChildSpec[Any], actor: Actor[Any], strategy: SupervisorStrategy, restart_log: RestartLog
    ) -> None:
        self.spec = spec
        self.strategy = strategy
        """The supervisor's strategy."""
        self.restart_log = restart_log
        """The supervisor's recent restarts (the intensity), shared by its children."""
        self.decider = spec.on_failure if spec.on_failure is not None else strategy.decider
        self.backoff = spec.backoff if spec.backoff is not None else strategy.backoff
        self.actor = actor
        self.mailbox: Mailbox = actor._actor_mailbox  # pyright: ignore[reportPrivateUsage]
        self.ref: ActorRef[Any] = actor.reference
        self.state: Literal["running", "restarting", "stopping", "gone"] = "running"
        self.reason: BaseException | None = None
        """Why the last incarnation ended (``None``: cleanly)."""
        self.directive: Directive | None = None
        """What the running incarnation's failure was decided to mean, once it failed."""
        self.fault: Exception | None = None
        """The error of a decider that failed (raised, or returned no directive): the supervisor
        fails with it (``escalate``)."""
        self.outcome: Outcome | None = None
        """How the last incarnation's end counts, noted as it ended."""
        self.restarted = False
        """True until a new incarnation has run `Actor.post_restart`."""
        self.attempts = 0
        """Restarts in a row, for the backoff."""
        self.restarts = 0
        """Restarts in all (`Actor.statistics`)."""
        self.started_at = 0.0
        self.pending: asyncio.TimerHandle | None = None
        """A restart waiting for its backoff delay."""
        self.group: list[SupervisedChild] = []
        """The children that ``pending`` restarts together (one_for_all, rest_for_one)."""


class RestartLog:
    """The times of a supervisor's recent restarts, to enforce its intensity."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] | None = None
        """The restarts' times, oldest first (none until the first: a deque is 760 bytes, and
        most supervisors never restart anything)."""

    def allow(self, now: float, strategy: SupervisorStrategy) -> bool:
        """Count a restart at ``now``; False if that makes more than the strategy allows."""
        times = self.times
        if times is None:
            times = self.times = deque()
        while times and times[0] <= now - strategy.within:
            times.popleft()
        times.append(now)
        return len(times) <= strategy.max_restarts

    def would_allow(self, now: float, strategy: SupervisorStrategy) -> bool:
        """Whether `allow` at ``now`` would say yes, counting nothing (read as a child fails, so
        that its log line says what its supervisor will do)."""
        since = now - strategy.within
        return sum(1 for time in self.times or () if time > since) < strategy.max_restarts
