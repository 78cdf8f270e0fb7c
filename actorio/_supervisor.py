"""`Supervisor`: the runtime side of an actor's children, created on its first child.

It starts children (`Actor.register_child`, `Actor.supervise`), follows their ends in the parent's
task (`Actor.handle_child_stopped`, then the supervision decision), restarts supervised ones
(strategy, intensity, backoff: the policies and pure decisions are in ``_supervision.py``), and
stops them all, newest first, when the parent stops. An actor holds one in a single slot, made on
first use: most actors have no children.
"""

# pyright: reportPrivateUsage=false
# A supervisor drives its children's lifecycle through their framework slots (``_actor_*``):
# parent, children and their supervisor are one unit of the core.

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._ask import AskRef
from ._exceptions import RestartIntensityExceeded
from ._inputs import InputSignal
from ._log_limit import LogLimit
from ._mailbox import SYSTEM, BoundedMailbox, Mailbox
from ._ref import ActorRef
from ._supervision import ChildSpec, RestartLog, SupervisedChild
from ._watch import notify_watchers

FACTORY_FAILURE_LOG_LIMIT = 10
"""How many "could not restart" errors (a child's factory raising) the process logs in a minute."""

_factory_failures = LogLimit(
    logging.getLogger("actorio.actor"), limit=FACTORY_FAILURE_LOG_LIMIT, about="failed child factories"
)

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = [
    "RestartHook",
    "Supervisor",
    "SupervisorLike",
    "add_restart_hook",
    "make_child",
    "remove_restart_hook",
]

RestartHook = Callable[["Actor[Any]", "BaseException | None"], None]
"""What `add_restart_hook` calls when a supervisor restarts a child: ``(incarnation, error)``."""

_restart_hooks: tuple[RestartHook, ...] = ()


def add_restart_hook(hook: RestartHook) -> None:
    """Call ``hook(incarnation, error)`` each time a supervisor restarts a child, when the new
    incarnation is made (after the backoff; never for a failure that made the supervisor give
    up, nor for a restart that did not happen): ``incarnation`` is the one that ended, ``error``
    why (a sibling restarted with it, by ``one_for_all`` or ``rest_for_one``: the failing child's
    error; ``None``: a permanent child that returned). The seam for metrics. Adding a hook twice
    adds it once."""
    global _restart_hooks
    if hook not in _restart_hooks:
        _restart_hooks = (*_restart_hooks, hook)


def remove_restart_hook(hook: RestartHook) -> None:
    """Stop calling ``hook`` (see `add_restart_hook`); nothing happens if it was not added."""
    global _restart_hooks
    _restart_hooks = tuple(h for h in _restart_hooks if h != hook)


class SupervisorLike(Protocol):
    """What an actor does with its children, through the one slot that holds them (made on its
    first child). `Supervisor` keeps it for a running actor; a test kit keeps it to see what a
    handler does with children without starting them (``actorio.testing.run_handler``).

    - `register` (`Actor.register_child`), `supervise` (`Actor.supervise`): start a child, return
      its reference;
    - `stop_child` (`Actor.stop_child`): stop the child behind that mailbox for good; False if it
      is not a child;
    - ``actors`` (`Actor.children`): the children, in start order;
    - `stop_all`, `abort_all`: the actor stops: stop its children, newest first (each within
      its stop timeout, or cancelled at once); both return once they have ended.
    """

    @property
    def actors(self) -> list[Actor[Any]]: ...

    async def register(self, child: Actor[Any], /) -> ActorRef[Any]: ...
    async def supervise(self, spec: ChildSpec[Actor[Any]], /) -> ActorRef[Any]: ...
    async def stop_child(self, mailbox: Mailbox, /) -> bool: ...
    async def stop_all(self) -> None: ...
    async def abort_all(self) -> None: ...


class Supervisor:
    """The children of one parent actor, in start order, with the records of supervised ones."""

    __slots__ = ("parent", "children", "restarts")

    def __init__(self, parent: Actor[Any]) -> None:
        self.parent = parent
        self.children: dict[Mailbox, SupervisedChild | None] = {}
        """Each child's mailbox (which outlives its incarnations) -> its record (``None``: a child
        from `register_child`, never restarted)."""
        self.restarts: RestartLog | None = None
        """The recent restarts, for the intensity (made with the first supervised child)."""

    @classmethod
    def of(cls, parent: Actor[Any]) -> SupervisorLike:
        """``parent``'s children, to start one: made with its first child. ``RuntimeError`` if
        ``parent`` is stopped (a child started then would be stopped by nothing)."""
        if parent._actor_closed:
            raise RuntimeError(f"{parent!r} is stopped: it cannot supervise new children")
        children = parent._actor_children
        if children is None:
            children = parent._actor_children = cls(parent)
        return children

    # -- starting -------------------------------------------------------------------------

    async def register(self, child: Actor[Any]) -> ActorRef[Any]:
        """Start ``child`` as a plain child (see `Actor.register_child`)."""
        mailbox = child._actor_mailbox
        if mailbox in self.children:
            raise RuntimeError(f"{child!r} is a child of {self.parent!r} already")
        self.children[mailbox] = None
        try:
            reference = await child.start()
        except BaseException:
            del self.children[mailbox]  # never started: not a child
            raise
        self._follow(child)
        return reference

    async def supervise(self, spec: ChildSpec[Actor[Any]]) -> ActorRef[Any]:
        """Start the first incarnation of a supervised child (see `Actor.supervise`)."""
        parent = self.parent
        actor = make_child(spec)
        if self.restarts is None:
            self.restarts = RestartLog()
        record = SupervisedChild(spec, actor, type(parent).supervisor_strategy, self.restarts)
        actor._actor_record = record
        self.children[record.mailbox] = record
        record.started_at = asyncio.get_running_loop().time()
        try:
            await actor.start()
        except BaseException:
            del self.children[record.mailbox]  # never started: not a child
            raise
        self._follow(actor)
        return record.ref

    def _follow(self, child: Actor[Any]) -> None:
        assert child._actor_task is not None
        child._actor_task.add_done_callback(functools.partial(self._child_done, child))

    @property
    def actors(self) -> list[Actor[Any]]:
        """The children, in start order (for a supervised child, its current incarnation)."""
        return [mailbox.actor for mailbox in self.children]

    # -- stopping -------------------------------------------------------------------------

    async def stop_child(self, mailbox: Mailbox) -> bool:
        """Stop the child behind ``mailbox`` for good; False if it is not a child."""
        if mailbox not in self.children:
            return False
        record = self.children.pop(mailbox)
        await self._stop(mailbox, record)
        return True

    async def stop_all(self) -> None:
        """The parent stops: stop the children, newest first, each within its stop timeout. If this
        is cancelled meanwhile, the children not yet stopped are cancelled at once."""
        try:
            while self.children:
                # A child stays one while it stops: a stop that its handler asks of this actor
                # (or of an ancestor) is then one from below, which does not wait for this one.
                mailbox, record = next(reversed(self.children.items()))
                await self._stop(mailbox, record)
                self.children.pop(mailbox, None)
        except BaseException:
            await self.abort_all()
            raise

    async def abort_all(self) -> None:
        """Cancel every child at once, newest first, then wait until each has ended (its
        teardown run): a parent ends after its children, even when it is cancelled (a stop's
        timeout ran out), so that its watchers are told of its end after theirs. If this wait
        is cancelled in turn, the children go on ending without it."""
        remaining, self.children = self.children, {}
        aborted = [self._abort(mailbox, record) for mailbox, record in reversed(remaining.items())]
        tasks = [task for task in aborted if task is not None]
        if tasks:
            await asyncio.wait(tasks)

    async def _stop(self, mailbox: Mailbox, record: SupervisedChild | None) -> None:
        """Stop a child (within its stop timeout) that will not be restarted."""
        timeout = type(self.parent).child_stop_timeout
        if record is not None:
            record.state = "stopping"
            timeout = record.spec.stop_timeout
            self._cancel_pending(record)
        actor = mailbox.actor
        if actor._actor_task is not None and not actor._actor_task.done():
            await actor.stop(timeout)
        if not mailbox.closed and (actor._actor_task is None or actor._actor_closed):
            # Waiting for a restart (or its incarnation was ending for one when stopped): the
            # restart will not come. (An incarnation still running was stopped from below, by a
            # descendant's handler: it closes its mailbox itself when it ends.)
            _close_mailbox(mailbox, record)
        if record is not None:
            record.state = "gone"

    def _abort(self, mailbox: Mailbox, record: SupervisedChild | None) -> asyncio.Task[None] | None:
        """Stop a child at once, without waiting: cancel its task (returned, to wait for), or
        close its mailbox if it waits for a restart."""
        if record is not None:
            record.state = "gone"
            self._cancel_pending(record)
        actor = mailbox.actor
        task = actor._actor_task
        if task is not None and not task.done():
            actor._actor_stopping = True
            task.cancel()
            task.add_done_callback(functools.partial(_close_after, mailbox, record))
            return task
        if not mailbox.closed:
            _close_mailbox(mailbox, record)
        return None

    def _cancel_pending(self, record: SupervisedChild) -> None:
        """Cancel a restart waiting for its backoff delay; the rest of its group (one_for_all,
        rest_for_one) is restarted now rather than left without an incarnation."""
        pending, record.pending = record.pending, None
        if pending is None:
            return
        pending.cancel()
        rest = [other for other in record.group if other is not record and other.state == "restarting"]
        record.group = []
        if rest and not self.parent._actor_closed:
            self._in_parent(self._incarnate, rest)

    def _in_parent(self, function: Any, *arguments: Any) -> None:
        """Run ``function(*arguments)`` in the parent's task, as a system message."""
        self.parent._actor_mailbox.put_system(InputSignal(functools.partial(function, *arguments)))

    # -- a child ended --------------------------------------------------------------------

    def _child_done(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            # Retrieved: the parent deals with it (handle_child_stopped, supervision), and the
            # child logged it; asyncio would otherwise log it again when the task is collected,
            # also when the parent stops before its notice is handled.
            task.exception()
        if self.parent._actor_closed:
            return
        if self.children.get(child._actor_mailbox) is not None:  # supervised: the parent decides
            _fail_deadlocked_ask(self.parent, child)
        self._in_parent(self._child_stopped, child, task)

    async def _child_stopped(self, child: Actor[Any], task: asyncio.Task[None]) -> None:
        parent = self.parent
        mailbox = child._actor_mailbox
        children = self.children
        record = children.get(mailbox)
        if record is None:
            if mailbox.actor is child:
                children.pop(mailbox, None)
            await parent.handle_child_stopped(child, task)
            return
        if record.actor is not child or record.state != "running":
            # An incarnation this actor stopped itself (a group restart, `stop_child`).
            await parent.handle_child_stopped(child, task)
            return
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        record.reason = error
        try:
            await parent.handle_child_stopped(child, task)
        finally:
            # Even if the hook raised: the child is restarted, or its end settled.
            outcome = record.outcome
            if outcome == "restart":
                await self._restart(record, error)
            else:
                children.pop(mailbox, None)
                record.state = "gone"
        if outcome == "escalate" and error is not None:
            fault, record.fault = record.fault, None
            raise fault or error  # a decider's failure is its supervisor's own

    # -- restarts -------------------------------------------------------------------------

    async def _restart(self, record: SupervisedChild, error: BaseException | None) -> None:
        """A child's incarnation ended and must be replaced: apply the intensity, the strategy
        and the backoff. Runs in the parent's task."""
        parent = self.parent
        strategy = type(parent).supervisor_strategy
        loop = asyncio.get_running_loop()
        now = loop.time()
        record.state = "restarting"
        if not record.restart_log.allow(now, strategy):
            raise RestartIntensityExceeded(
                parent.identifier, strategy.max_restarts, strategy.within
            ) from error
        records = [r for r in self.children.values() if r is not None and r.state != "gone"]
        if strategy.strategy == "one_for_one":
            group = [record]
        elif strategy.strategy == "one_for_all":
            group = records
        else:
            group = records[records.index(record) :]
        joining: list[SupervisedChild] = []
        for other in reversed(group):
            if other is record:
                continue
            if other.mailbox.closed:
                # It ended for good in the meantime (stop, or escalate): its own notice, queued
                # in the parent's mailbox, settles it; restarting it would revive a closed
                # address and lose an escalation.
                continue
            if other.spec.restart == "temporary":
                await self.stop_child(other.mailbox)  # never restarted: stopped for good
                continue
            if other.pending is not None:
                other.pending.cancel()  # it restarts with this group instead, and so does its own
                other.pending = None
                joining.extend(other.group)
                other.group = []
            if other.state == "running":
                other.state = "restarting"
                other.reason = error
                await other.actor.stop(other.spec.stop_timeout)
        group = [
            other for other in records if other.state == "restarting" and (other in group or other in joining)
        ]
        backoff = record.backoff
        delay = 0.0
        if backoff is not None:
            if backoff.reset_after is not None and now - record.started_at >= backoff.reset_after:
                record.attempts = 0
            delay = backoff.delay(record.attempts)
            record.attempts += 1
        if delay > 0:
            record.group = group
            record.pending = loop.call_later(delay, self._restart_due, record, group)
        else:
            await self._incarnate(group)

    def _restart_due(self, record: SupervisedChild, group: list[SupervisedChild]) -> None:
        record.pending = None
        record.group = []
        if not self.parent._actor_closed:
            self._in_parent(self._incarnate, group)

    async def _incarnate(self, group: list[SupervisedChild]) -> None:
        """Start a new incarnation of each child of ``group`` still waiting for one, in start
        order, each taking over its predecessor's mailbox."""
        parent = self.parent
        for record in group:
            if record.state != "restarting" or parent._actor_closed or parent._actor_stopping:
                continue
            try:
                actor = _make(record.spec)
            except Exception as error:
                _factory_failures.log(
                    logging.ERROR,
                    "could not restart %s",
                    record.ref.identifier,
                    exc_info=error,
                    through=parent.logger,
                )
                record.reason = error
                # A restart like any other (intensity, backoff), as a step of the parent's: called
                # from here, a factory failing again and again would recurse without bound.
                self._in_parent(self._restart, record, error)
                return
            old = record.actor
            mailbox = record.mailbox
            # What __init__ did with the mailbox and reference it was given goes on to the
            # child's: a reference it handed out reaches the child, what it told itself is queued.
            made = actor._actor_mailbox
            actor._actor_ref._mailbox = mailbox
            for item in made.queue:
                if item is not SYSTEM:
                    mailbox.append(item)
            for item in made.system or ():
                mailbox.put_system(item)
            made.queue.clear()
            if actor._actor_timers is not None:
                actor._actor_timers.rebind(mailbox)
            if actor._actor_inputs is not None:
                actor._actor_inputs.rebind(mailbox)
            actor._actor_mailbox = mailbox
            actor._actor_ref = record.ref
            actor._actor_identifier = old.identifier
            actor._actor_record = record
            record.directive = None
            record.outcome = None
            record.restarted = True
            record.restarts += 1
            mailbox.actor = actor
            record.actor = actor
            record.state = "running"
            record.started_at = asyncio.get_running_loop().time()
            for hook in _restart_hooks:
                hook(old, record.reason)
            await actor.start()
            self._follow(actor)


def _fail_deadlocked_ask(parent: Actor[Any], child: Actor[Any]) -> None:
    """``child``, supervised by ``parent``, ended: what follows runs in the parent's task, between
    its messages. If the parent's handler awaits an ask to the child (queued in its mailbox, or
    waiting for room there), that ask can only time out (or wait for ever, without a timeout): it
    times out now, with ``asyncio.TimeoutError`` saying why, and the handler goes on, as it
    would at its timeout (docs/concepts/supervision.md). A tell waiting for room there gets
    `MailboxFull`, as an actor telling itself into its full mailbox does. However the ask was bounded (its
    ``timeout``, an ``asyncio.timeout`` block, ``wait_for`` from Python 3.12), it ends as its
    bound would have ended it, only sooner. An ask awaited from another task is not seen.

    Read from the coroutines the parent's task awaits, one inside the other, down to an
    ``ActorRef.ask`` awaiting its future: the ask's path pays nothing for it."""
    task = parent._actor_task
    if task is None or task.done():
        return
    awaited: Any = task.get_coro()
    for _ in range(_DEPTH):
        frame = getattr(awaited, "cr_frame", None)
        if frame is None:
            return  # (a future, or an awaitable that is no coroutine: the chain ends)
        if frame.f_code is _TELL_CODE:  # a tell waiting for room: MailboxFull, as to itself
            waiter = _room_waiter(awaited, child._actor_mailbox)
            if waiter is not None and not waiter.done():
                waiter.set_exception(frame.f_locals["full"])
            return
        if frame.f_code is _ASK_CODE:
            future, mailbox = frame.f_locals.get("future"), child._actor_mailbox
            asked = type(frame.f_locals.get("message")).__name__
            timed_out = asyncio.TimeoutError(
                f"no reply from {child.identifier} to {asked}: it ended, and its restart runs in "
                f"{parent.identifier}'s task once this handler returns, so the ask could only "
                "time out; ask from an input task (register_input_task) to wait for the answer"
            )
            for item in mailbox.queue:
                sender = getattr(item, "sender", None)
                if type(sender) is AskRef and sender.future is future:
                    sender.fail(timed_out)
                    return
            # Not queued: waiting for room in the child's bounded mailbox (what frees it is the
            # restart).
            waiter = _room_waiter(awaited, mailbox)
            if waiter is None:
                return
            if not waiter.done():
                waiter.set_exception(timed_out)
            elif not mailbox.closed and future is not None and not future.done():
                # Woken for room that came as the child ended, and not yet resumed: the ask will
                # queue its message there, then await its future, which times out now.
                future.set_exception(timed_out)
            return
        awaited = awaited.cr_await


def _room_waiter(sending: Any, mailbox: Mailbox) -> asyncio.Future[None] | None:
    """The future that ``sending`` (a coroutine of `ActorRef`) waits on for room in ``mailbox``:
    the ``waiter`` of the ``wait_for_room`` it awaits; ``None`` if it waits for nothing there."""
    room = getattr(sending.cr_await, "cr_frame", None)
    if room is None or room.f_code is not _ROOM_CODE:
        return None
    waiter = room.f_locals.get("waiter")
    return waiter if waiter in (mailbox.putters or ()) else None


_DEPTH = 100
"""How many coroutines deep, one awaiting the next, `_fail_deadlocked_ask` looks."""
_ASK_CODE = ActorRef.ask.__code__
_TELL_CODE = ActorRef._tell_when_room.__code__
_ROOM_CODE = BoundedMailbox.wait_for_room.__code__


def make_child(spec: ChildSpec[Actor[Any]]) -> Actor[Any]:
    """The first incarnation of a supervised child, not started: what ``spec``'s factory makes,
    named ``spec.name`` if it has one. ``TypeError`` if the factory does not return an actor."""
    actor = _make(spec)
    if spec.name is not None:
        actor._actor_identifier = spec.name
    return actor


def _make(spec: ChildSpec[Actor[Any]]) -> Actor[Any]:
    from ._actor import Actor  # the actor module imports this one

    made = spec.factory()
    if not isinstance(cast(object, made), Actor):
        raise TypeError(f"a child factory must return an Actor, not {type(made).__name__}")
    return made


def _close_after(mailbox: Mailbox, record: SupervisedChild | None, task: object) -> None:
    """An aborted child's task is done: close its mailbox unless it closed it itself."""
    if not mailbox.closed:
        _close_mailbox(mailbox, record)


def _close_mailbox(mailbox: Mailbox, record: SupervisedChild | None) -> None:
    """A child waits for a restart that will not come: its address closes now (queued messages
    are dead letters, queued asks fail) and its watchers are told why it ended."""
    actor = mailbox.actor
    reason = record.reason if record is not None else None
    task = actor._actor_task
    if reason is None and task is not None and task.done() and not task.cancelled():
        reason = task.exception()
    mailbox.close(reason)  # the queued asks fail with why the child ended
    notify_watchers(mailbox, actor._actor_ref, reason)
