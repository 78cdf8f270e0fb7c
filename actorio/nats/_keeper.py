"""Publication supervision: what `Node.publish` starts, and what keeps it serving.

Owns:

- `PUBLICATION_STRATEGY`: the default policy of an actor the node supervises for a publication;
- `PublicationSupervisor`: a node-owned actor that supervises one published actor, and ends when
  that actor has stopped for good. One per supervised actor, so that an actor that exhausts its
  restart intensity stops its own supervisor only: the node's other publications go on;
- `Target`: what ``publish`` was given, classified before anything starts (`Target.of`), then
  started (`Target.start`):

  - a factory (an actor class, a callable, a `ChildSpec`): the node supervises it; a failure
    restarts it (backoff, intensity: ``supervision``, else `PUBLICATION_STRATEGY`);
  - an actor not yet started (or its reference): it cannot be made again, so the node
    supervises it with the ``resume`` directive: a failed message is a dead letter and the same
    actor, state kept, goes on with the next;
  - a running actor (a supervised child's reference, an actor its owner started): published as
    it is; whoever started it supervises it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, cast

from .. import (
    Actor,
    ActorRef,
    ActorStopped,
    Backoff,
    ChildSpec,
    Decider,
    Directive,
    EndMainLoop,
    SupervisorStrategy,
    Terminated,
    handles,
)
from ..lowlevel import Mailbox, mailbox_of, task_of

__all__ = ["PUBLICATION_STRATEGY", "PublicationSupervisor", "Target"]

_logger = logging.getLogger("actorio.nats")

PUBLICATION_STRATEGY = SupervisorStrategy(
    "one_for_one",
    max_restarts=10,
    within=10.0,
    backoff=Backoff(min_delay=0.1, max_delay=5.0, factor=2.0, jitter=0.2, reset_after=10.0),
)
"""The default supervision of an actor that a publication makes from a factory: restart after
any ``Exception``, the n-th restart in a row after ``min(5, 0.1 * 2 ** n)`` seconds (plus up to
20 %), the count starting again once an incarnation ran 10 s. The intensity, 10 restarts within
10 s, is never reached with that backoff (it allows at most 7 in any 10 s): by default a
published actor is restarted for as long as it fails. A policy of one's own can give up."""


class PublicationSupervisor(Actor[Terminated]):
    """Supervises one published actor for its node; stops once that actor has stopped for good.

    If the actor fails more often than the intensity allows (or a failure is escalated), this
    supervisor stops it and fails: the actor's publications end (death watch), the failure is
    logged on ``actorio.nats``, and the node's other publications go on.
    """

    supervisor_strategy = PUBLICATION_STRATEGY

    def __init__(self, name: str, spec: ChildSpec[Actor[Any]]) -> None:
        super().__init__(identifier=f"{name}/supervisor")
        self.name = name
        self._spec = spec
        self._started: asyncio.Future[ActorRef[Any]] = asyncio.get_running_loop().create_future()

    async def mainloop_setup(self) -> None:
        try:
            child = await self.supervise(self._spec)
        except Exception as error:
            self._started.set_exception(error)
            raise EndMainLoop() from None  # the caller of publish() gets the error
        self.watch(child)
        self._started.set_result(child)

    @handles(Terminated)
    async def child_stopped(self, msg: Terminated) -> None:
        raise EndMainLoop()  # stopped for good: nothing left to supervise

    async def child(self) -> ActorRef[Any]:
        """Start and return the supervised actor's reference (raise what its first start raised)."""
        await self.start()
        task = task_of(self)
        assert task is not None
        task.add_done_callback(self._ended)
        # The mainloop sets it, or ends (cancelled before its first step) without a word.
        waits: list[asyncio.Future[Any]] = [self._started, task]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.done():
            raise ActorStopped(self.identifier)
        return self._started.result()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        _logger.error(
            "%r is no longer published by this process: its supervision gave up (%r); "
            "the node's other publications go on",
            self.name,
            task.exception(),
        )


_strategy_classes: dict[tuple[int, float], type[PublicationSupervisor]] = {}


def _supervisor_class(strategy: SupervisorStrategy) -> type[PublicationSupervisor]:
    """A `PublicationSupervisor` class with ``strategy``'s intensity (a class attribute in the
    core); its decider and backoff travel in the child's spec."""
    key = (strategy.max_restarts, strategy.within)
    if key == (PUBLICATION_STRATEGY.max_restarts, PUBLICATION_STRATEGY.within):
        return PublicationSupervisor
    found = _strategy_classes.get(key)
    if found is None:
        kept = SupervisorStrategy(max_restarts=strategy.max_restarts, within=strategy.within)
        attributes = {"__slots__": (), "supervisor_strategy": kept}
        made = type("PublicationSupervisor", (PublicationSupervisor,), attributes)
        found = _strategy_classes[key] = cast("type[PublicationSupervisor]", made)
    return found


def _directive(decider: Decider | None, error: BaseException, default: Directive) -> Directive:
    """What ``decider`` says of ``error`` (a mapping is looked up along its MRO); ``default`` for
    an ``Exception`` it does not name, ``escalate`` for anything else."""
    if decider is not None:
        if callable(decider):
            return decider(error)
        for kind in type(error).__mro__:
            directive = decider.get(kind)
            if directive is not None:
                return directive
    return default if isinstance(error, Exception) else "escalate"


def _resume_decider(name: str, decider: Decider | None) -> Callable[[BaseException], Directive]:
    """The decider of an actor that cannot be made again: ``resume`` unless ``decider`` says
    otherwise; ``restart`` (impossible) stops it, with an error logged."""

    def decide(error: BaseException) -> Directive:
        directive = _directive(decider, error, "resume")
        if directive == "restart":
            _logger.error(
                "%r: an actor instance cannot be restarted (publish its class or a factory for "
                "that): stopping it after %r",
                name,
                error,
            )
            return "stop"
        return directive

    return decide


def _once(actor: Actor[Any]) -> Callable[[], Actor[Any]]:
    def factory() -> Actor[Any]:
        return actor

    return factory


@dataclasses.dataclass(frozen=True)
class Target:
    """What `Node.publish` was given, checked, and how to start it."""

    name: str
    spec: ChildSpec[Actor[Any]] | None
    """The child the node supervises (``None``: published as it is)."""
    mailbox: Mailbox | None
    """The actor's mailbox, when it exists before the start (not for a factory)."""
    strategy: SupervisorStrategy
    owned: bool
    """True for an actor the node made from a factory: it stops when the node closes."""

    @classmethod
    def of(cls, name: str, target: object, supervision: SupervisorStrategy | None) -> Target:
        """Classify ``target``; raise ``TypeError`` for what cannot be published, `ActorStopped`
        for an actor that stopped, ``ValueError`` for ``supervision`` of a running actor."""
        strategy = supervision if supervision is not None else PUBLICATION_STRATEGY
        kind = type(target).__name__
        if isinstance(target, ChildSpec):
            spec = cast("ChildSpec[Actor[Any]]", target)
            return cls(name, _with_defaults(spec, name, strategy), None, strategy, True)
        mailbox = mailbox_of(target)
        if mailbox is None:
            if isinstance(target, Actor) or not callable(target):
                raise TypeError(f"publish() takes an actor, a local reference or a factory, not {kind}")
            factory = cast("Callable[[], Actor[Any]]", target)
            return cls(name, _with_defaults(ChildSpec(factory), name, strategy), None, strategy, True)
        if mailbox.closed:
            raise ActorStopped(mailbox.actor.identifier)
        actor: Actor[Any] = mailbox.actor
        if actor.started:
            if supervision is not None:
                raise ValueError(
                    f"{actor!r} is running already: whoever started it supervises it "
                    "(supervision= applies to an actor that publish() starts)"
                )
            return cls(name, None, mailbox, strategy, False)
        decider = _resume_decider(name, strategy.decider)
        spec = ChildSpec(_once(actor), restart="temporary", on_failure=decider)
        return cls(name, spec, mailbox, strategy, False)

    async def start(self) -> tuple[Mailbox, PublicationSupervisor | None]:
        """Start the actor (under a new `PublicationSupervisor`, unless it runs already): its
        mailbox and its supervisor. Raises what the actor's first start raised."""
        if self.spec is None:
            assert self.mailbox is not None
            return self.mailbox, None
        supervisor = _supervisor_class(self.strategy)(self.name, self.spec)
        child = await supervisor.child()
        mailbox = mailbox_of(child)
        assert mailbox is not None
        return mailbox, supervisor


def _with_defaults(
    spec: ChildSpec[Actor[Any]], name: str, strategy: SupervisorStrategy
) -> ChildSpec[Actor[Any]]:
    """``spec`` named after the publication (unless it has a name), with the strategy's decider
    and backoff unless it has its own."""
    return dataclasses.replace(
        spec,
        name=spec.name if spec.name is not None else name,
        on_failure=spec.on_failure if spec.on_failure is not None else strategy.decider,
        backoff=spec.backoff if spec.backoff is not None else strategy.backoff,
    )
