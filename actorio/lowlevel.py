"""The low-level seam: what code that extends actorio (a transport, a test kit) needs from the core.

Not for daily use, as ``trio.lowlevel`` is not: an application needs ``actorio`` alone. But
``actorio.nats`` and ``actorio.testing`` are written against this module and nothing else of
the core's internals (tests/project/test_architecture.py enforces it), so a third-party
transport or test kit can do what they do, and can rely on these names as on the rest of the
public API.

What is here:

- **Asks** (the rule is in one place; see ``AskRef``): `ask_message` makes the copy of a message
  that carries a new ask; `hand_off` notes that a message carrying an ask went onwards (and
  returns that ask, for a transport that answers it itself); `AskRef.settle`, `AskRef.abandon`
  and `AskRef.fail` end it as the mainloop does; `ask_expired` says that an ask's future ended
  at the ask's own timeout (not at a ``TimeoutError`` of its handler's); `cancelled_error` is
  the failure a handler's own ``CancelledError`` stands for (its actor was not cancelled).
- **Mailboxes**: `MailboxLike`, the contract a reference relies on (a test double can keep it;
  ``ActorRef.tell`` reads the length of its ``queue`` and yields to the event loop first when it
  is a multiple of `CATCH_UP_DEPTH`);
  `mailbox_of` finds the mailbox behind an actor or a local reference; `Mailbox.withdraw` takes
  a queued message back.
- **Actors**: `actor_of` (the incarnation behind a reference), `task_of` (its mainloop task),
  `barrier` (wait until an actor handled what it was told so far), `handler_for` (what the
  dispatch table gives a message class), `HANDLES_ATTRIBUTE` (the attribute by which ``@handles``
  marks a method: a wrapper that copies it, as `functools.wraps` does, handles the same types),
  `check_accepted` (a reference's filter, at the sender), `reserve_handler_names` (names an
  extension's actor classes call on their actors, which no handler of a subclass may take).
- **Death watch**: `watch` and `unwatch` with any reference as the watcher.
- **The wire form**: `encode_wire` (the one encoder of ``{"type", "data"}``), `wire_name_of`,
  `wire_aliases_of` (the other wire names a receiver accepts),
  `reply_type_of`, `reply_messages` (whether a reply travels as messages' wire forms, the one
  rule for its codec and its schemas), `message_types_of`, and `wire_envelope_model` / `wire_union_adapter` to
  validate the wire form of chosen message types. JSON has no NaN or infinity:
  `refuse_non_finite` raises ``ValueError`` for one that a JSON body lost, where
  `may_hold_float` says a type may hold one (`FLOATS_ATTRIBUTE`: where a model class keeps
  that answer).
- **Logs**: `LogLimit`, logging within a limit, for lines that input from outside could multiply
  (`reset_log_limits` starts every limit's window again, for tests); `printable`, text from
  outside with its control characters escaped; `shorten`, text cut to a bounded length.
- **Types**: `is_message_class`, `is_actor_class`, `union_arms`; `Request`, the structural type
  that lets a signature say "a member of this protocol whose reply is R" (as `actorio.ask` does),
  and `Member`, its counterpart for a message class (as `ActorRef.narrow`).
- **Instrumenting** (for tracing, metrics and statistics; see the block at the end):
  `add_handler_wrapper` puts a `HandlerWrapper` around the handlers of every actor class (the
  mainloop pays nothing while there is none); `counting_wrapper` counts what
  `Actor.statistics` reports as handled, failed and time in handlers; `snapshot` gives a tree of
  actors as JSON-ready data; `configure_alarms` and `alarm_settings()` set and read the
  always-on alarms (`AlarmSettings`); `add_send_hook` sees every send in any task (the message
  as queued: an ask's copy), `add_timer_hook` every timer started, `add_restart_hook` every
  restart a supervisor makes (after its intensity allowed it); `decision_on` says what a
  handler's failure on a told message leads to (restart, resume, stop, ...).
- **Context across processes**: a tracer sets the propagator (`set_propagator`: `Inject`,
  `Extract`); a transport calls `inject` on the headers of what it sends and opens `extracted`
  around the local tell of what it receives (both do nothing without a propagator, which
  `propagating` tells; with one, a message whose headers carry no context starts a new trace,
  whatever context is current where it arrives), and
  `report_transport` for each message sent or received and each error, which metrics hear
  through `add_transport_listener`; it opens `transport_operation` around each operation its
  client makes and waits for (a remote ask), a block that telemetry sets
  (`set_transport_operation_hook`, a `TransportOperation`) for a span and its duration.
- **Observing and standing in** (for test kits and tracing; see the block at the end):
  `observe_sends` sees every tell and ask made in a context; `substitute_children` gives one
  actor a stand-in (a `SupervisorLike`) for its children; `make_child` makes what a `ChildSpec`
  would start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from . import _alarms
from ._actor import Actor, is_actor_class
from ._alarms import AlarmSettings, configure_alarms
from ._ask import AskRef, ask_message, hand_off, with_sender
from ._dead_letters import shorten
from ._dispatch import (
    HANDLES_ATTRIBUTE,
    Handler,
    HandlerWrapper,
    handler_wrappers,
    reserve_handler_names,
    resolve_handler,
    set_handler_wrappers,
)
from ._finite import FLOATS_ATTRIBUTE, may_hold_float, refuse_non_finite
from ._incarnation import SIGNALS, cancelled_error, decision_on
from ._inputs import Barrier
from ._log_limit import LogLimit, printable, reset_log_limits
from ._mailbox import Mailbox, MailboxLike
from ._message import is_message_class, reply_messages
from ._propagation import Extract, Inject, extracted, inject, propagating, set_propagator
from ._protocol import Payload, encode_wire, message_types_of, reply_type_of, wire_aliases_of, wire_name_of
from ._protocol import envelope_model as wire_envelope_model
from ._protocol import union_adapter as wire_union_adapter
from ._ref import (
    CATCH_UP_DEPTH,
    ActorRef,
    SendHook,
    SendObserver,
    add_send_hook,
    ask_expired,
    observe_sends,
    remove_send_hook,
)
from ._statistics import counting_wrapper, snapshot
from ._supervisor import RestartHook, SupervisorLike, add_restart_hook, make_child, remove_restart_hook
from ._timers import TimerHook, add_timer_hook, remove_timer_hook
from ._transport import Operation as TransportOperation
from ._transport import TransportListener, add_transport_listener, remove_transport_listener
from ._transport import operation as transport_operation
from ._transport import report as report_transport
from ._transport import set_operation_hook as set_transport_operation_hook
from ._types import Member, Request, union_arms
from ._watch import unwatch, watch

__all__ = [
    "CATCH_UP_DEPTH",
    "FLOATS_ATTRIBUTE",
    "HANDLES_ATTRIBUTE",
    "AlarmSettings",
    "AskRef",
    "Extract",
    "Handler",
    "HandlerWrapper",
    "Inject",
    "LogLimit",
    "Mailbox",
    "MailboxLike",
    "Member",
    "Payload",
    "Request",
    "RestartHook",
    "SendHook",
    "SendObserver",
    "SupervisorLike",
    "TimerHook",
    "TransportListener",
    "TransportOperation",
    "actor_of",
    "add_handler_wrapper",
    "add_restart_hook",
    "add_send_hook",
    "add_timer_hook",
    "add_transport_listener",
    "alarm_settings",
    "ask_expired",
    "ask_message",
    "barrier",
    "cancelled_error",
    "check_accepted",
    "configure_alarms",
    "counting_wrapper",
    "decision_on",
    "encode_wire",
    "extracted",
    "hand_off",
    "handler_for",
    "handler_wrappers",
    "inject",
    "is_actor_class",
    "is_message_class",
    "mailbox_of",
    "make_child",
    "may_hold_float",
    "message_types_of",
    "observe_sends",
    "printable",
    "propagating",
    "refuse_non_finite",
    "remove_handler_wrapper",
    "remove_restart_hook",
    "remove_send_hook",
    "remove_timer_hook",
    "remove_transport_listener",
    "reply_messages",
    "reply_type_of",
    "report_transport",
    "reserve_handler_names",
    "reset_log_limits",
    "set_propagator",
    "set_transport_operation_hook",
    "shorten",
    "snapshot",
    "substitute_children",
    "task_of",
    "transport_operation",
    "union_arms",
    "unwatch",
    "watch",
    "wire_aliases_of",
    "wire_envelope_model",
    "wire_name_of",
    "wire_union_adapter",
    "with_sender",
]


def mailbox_of(target: object) -> Mailbox | None:
    """The mailbox behind an actor or a local `ActorRef` (shared by every incarnation of a
    supervised child), or ``None`` for anything else (a remote reference, a probe, a plain
    inbox)."""
    found: object = (
        target._actor_mailbox  # pyright: ignore[reportPrivateUsage]
        if isinstance(target, Actor)
        else getattr(target, "_mailbox", None)
    )
    return found if isinstance(found, Mailbox) else None


def actor_of(ref: ActorRef[Any]) -> Actor[Any] | None:
    """The actor that handles what ``ref`` is told now (for a supervised child, its current
    incarnation), or ``None`` if ``ref`` is not the reference of a local actor."""
    mailbox = mailbox_of(ref)
    return None if mailbox is None else mailbox.actor


def task_of(actor: Actor[Any]) -> asyncio.Task[None] | None:
    """The actor's mainloop task, or ``None`` before `Actor.start`. Its end is this incarnation's
    end; its exception, the error the incarnation failed with."""
    return actor._actor_task  # pyright: ignore[reportPrivateUsage]


def barrier(actor: Actor[Any]) -> asyncio.Future[bool]:
    """A future that becomes ``True`` once ``actor`` has handled every message queued before this
    call (in turn with them: never while one is being handled), or ``False`` if that incarnation
    ends first (stopped, or replaced by a restart: the messages still queued then go to the next
    incarnation). Costs one queued item; nothing on the path of other messages."""
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    mailbox = actor._actor_mailbox  # pyright: ignore[reportPrivateUsage]
    if actor.stopped or mailbox.closed or mailbox.actor is not actor:
        future.set_result(False)
    else:
        mailbox.append(Barrier(future))
    return future


def handler_for(actor_type: type[Actor[Any]], message_type: type) -> tuple[Handler, bool]:
    """The handler that ``actor_type``'s dispatch gives ``message_type`` (the nearest class in its
    MRO), and whether it is the fallback, ``handle_message`` (whose reply to an ask is what it
    tells the sender, not its return value)."""
    fallback: Handler = actor_type._actor_fallback  # pyright: ignore[reportPrivateUsage]
    handler = resolve_handler(
        actor_type._actor_handlers,  # pyright: ignore[reportPrivateUsage]
        message_type,
        fallback,
    )
    return handler, handler is fallback


def check_accepted(ref: ActorRef[Any], message: object) -> None:
    """Refuse ``message`` as ``ref`` would at the sender: ``TypeError`` if it is not a `Message`
    or not one of the reference's message types."""
    if type(message) not in ref._accepts:  # pyright: ignore[reportPrivateUsage]
        ref._check(message)  # pyright: ignore[reportPrivateUsage]


# -- observing and standing in ------------------------------------------------------------------
#
# What a test kit needs to run a handler against a stubbed context (as Akka's BehaviorTestKit
# runs a behaviour), and a tracer to see what is sent, without replacing anything of a class:
#
# - `observe_sends` (from ``_ref.py``): every tell and ask through an `ActorRef` or a `Reference`
#   in one context (a task and the tasks it creates) goes to a callback ``(recipient, message,
#   asked)``; off, it costs one test of a module global per send;
# - `substitute_children`: for one actor and the duration of a block, what its handlers do with
#   children (`Actor.register_child`, `Actor.supervise`, `Actor.stop_child`, `Actor.children`)
#   goes to a stand-in that keeps `SupervisorLike`, not to its `Supervisor`;
# - `make_child`: the actor a `ChildSpec` makes, as `Actor.supervise` would start it.


@contextmanager
def substitute_children(
    actor: Actor[Any], children: SupervisorLike
) -> Generator[SupervisorLike | None, None, None]:
    """While the block is open, ``actor``'s children are ``children``: `Actor.register_child`,
    `Actor.supervise`, `Actor.stop_child` and `Actor.children` go to it, whoever calls them.
    Yields what it stands in for (the actor's `Supervisor`, or ``None`` if it had no children
    yet), which is put back when the block ends; blocks on one actor must nest.

    For an actor whose mainloop is not running (``RuntimeError`` otherwise): a running actor's
    children are its supervisor's, which follows them until the actor stops.
    """
    if actor.running:
        raise RuntimeError(f"the children of a running actor cannot be substituted; {actor!r} is running")
    previous = actor._actor_children  # pyright: ignore[reportPrivateUsage]
    actor._actor_children = children  # pyright: ignore[reportPrivateUsage]
    try:
        yield previous
    finally:
        actor._actor_children = previous  # pyright: ignore[reportPrivateUsage]


# -- instrumenting ------------------------------------------------------------------------------
#
# Tracing, metrics and statistics see each handled message through handler wrappers, put into
# the actor classes' own dispatch tables (``_dispatch.py``): the mainloop is the same with or
# without them, and pays nothing while there are none.


def add_handler_wrapper(wrapper: HandlerWrapper) -> None:
    """Put ``wrapper`` around the handlers of every actor class, existing and to come (outside the
    wrappers added before it), until `remove_handler_wrapper`. Adding one already there does
    nothing.

    ``wrapper(actor_class, message_type, handler)`` returns what stands in for ``handler``
    (``message_type`` is ``None`` for ``handle_message``, the fallback): an ``async`` callable
    ``(actor, message)`` that returns what ``handler`` returns and raises what it raises. It runs
    in the actor's task, where ``handler`` would: for told and asked messages, timers' messages
    and watch notices, not for the runtime's own signals. Actors started from now on use the
    wrapped handlers for every message; an actor already running, for the message classes it had
    not met yet.
    """
    wrappers = handler_wrappers()
    if wrapper not in wrappers:
        set_handler_wrappers(Actor, SIGNALS, (*wrappers, wrapper))


def remove_handler_wrapper(wrapper: HandlerWrapper) -> None:
    """Take ``wrapper`` off the handlers (see `add_handler_wrapper`); nothing happens if it is
    not on. With the last one off, every actor class has its own handlers back."""
    wrappers = handler_wrappers()
    if wrapper in wrappers:
        set_handler_wrappers(Actor, SIGNALS, tuple(w for w in wrappers if w != wrapper))


def alarm_settings() -> AlarmSettings:
    """The alarm settings in force (`configure_alarms` changes them)."""
    return _alarms.alarm_settings
