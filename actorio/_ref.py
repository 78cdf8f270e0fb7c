"""References: the addresses that messages are told to.

- `ActorRef`: an actor's address: a mailbox and the message classes it accepts. ``tell`` queues
  a message; ``ask`` queues it and waits for the reply, correlated through a one-shot `AskRef`
  carried as the message's ``sender`` (the ask's rules are in ``_ask.py``).
- `Reference`: a plain inbox (an ``asyncio.Queue``) for code that is not an actor.
- `observe_sends`: the one observation point of what is told and asked through them, for a test
  kit or a tracer; off by default, and then it costs one test of a module global per send.
"""

from __future__ import annotations

import asyncio
import itertools
from asyncio import Future
from collections.abc import Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, cast, overload

from typing_extensions import TypeVar

from ._ask import AskRef, ask_message, hand_off
from ._exceptions import ActorStopped, DeadlockError, MailboxFull
from ._message import NO_REPLY, Message, NoReply, is_message_class
from ._sender import BaseRef
from ._types import Member, N, P, R, Request

if TYPE_CHECKING:
    from ._actor import Actor
    from ._mailbox import MailboxLike
    from ._protocol import ActorProtocol, Payload

__all__ = [
    "ActorRef",
    "Reference",
    "SendHook",
    "SendObserver",
    "add_send_hook",
    "ask",
    "ask_expired",
    "observe_sends",
    "remove_send_hook",
]

M = TypeVar("M", bound=Message[Any])

_reference_serials = itertools.count(1)

CATCH_UP_DEPTH = 256
"""`ActorRef.tell` yields to the event loop once before queueing when the actor's queue holds a
multiple of this many items (a power of two), so that the actor catches up with its sender.
Measured (200,000 tells, msg/s, built in the loop / prebuilt): 64: 470k / 1.31M, 128: 490k /
1.29-1.45M, 256: 474-504k / 1.57-1.58M, 512: 430k / 1.60M, 1024: 414-419k / 1.64M."""
_CATCH_UP_MASK = CATCH_UP_DEPTH - 1


def check_message(message: object) -> None:
    """Refuse, at the sender, anything that is not a `Message`."""
    if not isinstance(message, Message):
        raise TypeError(f"only actorio Message instances can be sent, not {type(message).__name__}")


class _Expired(asyncio.TimeoutError):
    """An ask's timeout, as its timer fails the future (said in full where the ask is awaited:
    the timer's arguments stay one, and a handler's own ``TimeoutError`` is never renamed)."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(_Expired())


def ask_expired(future: asyncio.Future[Any]) -> bool:
    """Whether ``future``, an ask's (`AskRef.future`), ended at the ask's own timeout (the
    ``timeout`` of `ActorRef.ask`): not at an ``asyncio.TimeoutError`` that the handler raised,
    nor cancelled, nor still pending."""
    return future.done() and not future.cancelled() and type(future.exception()) is _Expired


class ActorRef(BaseRef, Generic[P]):
    """The address of an actor that accepts the messages ``P`` (its protocol).

    Messages told through one reference are handled in the order they were told (FIFO per
    sender). A reference stays valid after its actor stops: what is told to it then is a dead
    letter, and an ask fails at once with `ActorStopped`. The reference of a supervised child
    stays valid across its restarts: it reaches whichever incarnation runs, through the mailbox
    they share.

    A reference is a mailbox (anything that keeps the `MailboxLike` contract) and a filter: the
    message classes it accepts (``None``: any message), with a cache of the classes already
    checked.
    """

    __slots__ = ("_mailbox", "_accepts", "_message_types")

    def __init__(
        self,
        mailbox: MailboxLike,
        message_types: tuple[type, ...] | None = None,
        accepts: dict[type, bool] | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._message_types = message_types
        # An actor's own reference shares its class's cache of accepted message classes.
        self._accepts: dict[type, bool] = {} if accepts is None else accepts

    @property
    def identifier(self) -> str:
        """The actor's identifier."""
        return self._mailbox.identifier

    @property
    def message_types(self) -> tuple[type, ...] | None:
        """The message classes this reference accepts (subclasses included), or ``None`` for any
        message. (The actor's protocol as data is ``type(actor).protocol``.)"""
        return self._message_types

    def _check(self, message: object) -> None:
        """Refuse, at the sender and before anything is queued, a message outside the protocol.

        Runs once per message class; the result is cached in ``_accepts``.
        """
        check_message(message)
        if self._message_types is not None and not isinstance(message, self._message_types):
            raise self._outside(type(message))
        self._accepts[type(message)] = True

    def _outside(self, message_type: type[Any]) -> TypeError:
        accepted = " | ".join(member.__name__ for member in self._message_types or ())
        return TypeError(
            f"{self.identifier} does not accept {message_type.__name__} (its protocol: {accepted})"
        )

    def narrow(self: ActorRef[M], message_type: type[Member[M, N]], /) -> ActorRef[N]:
        """A reference to the same actor that accepts only ``message_type`` (and its subclasses),
        statically and at run time: what to hand to an actor that should send only that.

        Raises ``TypeError`` if the actor does not accept ``message_type``.
        """
        given = cast(object, message_type)  # checked at run time too, for untyped callers
        if not is_message_class(given):
            raise TypeError(f"narrow() takes a Message subclass, not {given!r}")
        if self._message_types is not None and not issubclass(message_type, self._message_types):
            raise self._outside(message_type)
        return ActorRef(self._mailbox, (message_type,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._mailbox is self._mailbox

    def __hash__(self) -> int:
        return hash(self._mailbox)

    def tell_nowait(self, message: P, /) -> None:
        """Queue ``message`` for the actor and return at once.

        Raises ``TypeError`` if ``message`` is not a `Message`, and `MailboxFull` if the actor's
        mailbox is bounded and full (nothing is queued then). A message told to a stopped actor
        is a dead letter; if it carries an ask, that ask fails with `ActorStopped`.
        """
        if type(message) not in self._accepts:
            self._check(message)
        mailbox = self._mailbox
        if mailbox.closed:
            mailbox.reject(message)
        else:
            mailbox.put(message)
            # hand_off, inlined: this is the hot path of every tell.
            if type(message.sender) is AskRef:
                message.sender.handoffs += 1
        if _observing:
            _notify(self, message, False)

    async def tell(self, message: P, /) -> None:
        """Queue ``message`` for the actor; see `tell_nowait`. If the actor's mailbox is bounded
        and full, wait for room first (backpressure; senders waiting are served in order). If
        the actor stops meanwhile, the message is a dead letter. An actor's own handler telling
        it into its full mailbox gets `MailboxFull` at once: the room it would wait for comes only
        once that handler returns. So does a parent's handler waiting for room in the mailbox of
        its supervised child when the child ends (its restart waits for that handler).

        A sender that gets ahead of the actor lets it catch up: when the actor's queue holds a
        multiple of 256 items (``CATCH_UP_DEPTH``), this tell first yields to the event loop once
        (``await asyncio.sleep(0)``), then queues. A loop of tells therefore does not hold the
        loop for long, and a burst is handled while its messages are young instead of piling up
        (memory, and the cyclic collector walking them). The yield comes before anything is
        queued: a tell cancelled there sent nothing, as one cancelled while it waits for room.
        `tell_nowait` and `forward` never yield.
        """
        # tell_nowait, inlined: one Python call less on the path of every tell (callgrind, per
        # message told: 6,548 -> 6,070 instructions).
        if type(message) not in self._accepts:
            self._check(message)
        mailbox = self._mailbox
        if not len(mailbox.queue) & _CATCH_UP_MASK and mailbox.queue:
            await asyncio.sleep(0)  # 256, 512... queued: let the actor catch up before queueing more
        if mailbox.closed:
            mailbox.reject(message)
        else:
            try:
                mailbox.put(message)
            except MailboxFull as full:  # try/except costs nothing until it raises: unbounded is free
                await self._tell_when_room(message, full)
                return
            if type(message.sender) is AskRef:
                message.sender.handoffs += 1
        if _observing:
            _notify(self, message, False)

    async def _tell_when_room(self, message: P, full: MailboxFull) -> None:
        mailbox = self._mailbox
        if mailbox.waiting is None:
            reader = mailbox.reader
            if reader is not None and reader.cr_running:
                raise full  # the actor's own handler: the room would come only once it returns
        await mailbox.wait_for_room()
        if mailbox.closed:
            mailbox.reject(message)
        else:
            mailbox.append(message)
            hand_off(message)
        if _observing:
            _notify(self, message, False)

    async def forward(self, message: P, /) -> NoReply:
        """Tell ``message`` as it is, sender included, and return `NO_REPLY`.

        For a handler that hands the message it serves on: ``return await worker.forward(msg)``.
        If ``msg`` carries an ask, the actor it is handed to answers it. Waits for room as `tell`.
        """
        try:
            self.tell_nowait(message)  # as tell, without its coroutine
        except MailboxFull as full:
            await self._tell_when_room(message, full)
        return NO_REPLY

    @overload
    async def ask(
        self: ActorRef[Message[Any]], message: Message[Any], timeout: float | None = None
    ) -> Any: ...
    @overload
    async def ask(self: ActorRef[M], message: Request[M, R], timeout: float | None = None) -> R: ...
    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` and wait for its reply.

        The reply is what the handler returns (or, for a message reaching ``handle_message``,
        the first thing told to ``message.sender``). Concurrent asks each get their own reply.
        Raises what the handler raised, `UnhandledMessage` if the actor has no handler for it,
        `ActorStopped` if the actor is stopped or stops before answering, `DeadlockError` at once
        if the actor's own handler asks it, and ``asyncio.TimeoutError`` after ``timeout`` seconds.
        ``message`` itself is not changed.
        A message outside the protocol raises ``TypeError`` before anything is queued. If the
        actor's mailbox is bounded and full, the ask waits for room first, within ``timeout``
        (``asyncio.TimeoutError`` if none comes: nothing was queued).

        Statically, the reply is typed by the message (``Greet(Message[Greeting])`` gives a
        ``Greeting``) and a message outside the protocol is an error; on a reference without a
        protocol the reply is ``Any``, as the original API replied with whatever was told.
        """
        if type(message) not in self._accepts:
            self._check(message)
        mailbox = self._mailbox
        if mailbox.closed:
            raise self._refused(message)
        # An ask from the actor's own code could never be answered: its mainloop coroutine is
        # then the one running (any other asker's task runs while it is suspended). Two
        # attribute reads, where asyncio.current_task() is a Python function costing 330 ns.
        if mailbox.waiting is None:
            reader = mailbox.reader
            if reader is not None and reader.cr_running:
                raise DeadlockError(mailbox.identifier, message)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = Future(loop=loop)  # not loop.create_future: a Python call
        asking = ask_message(message, future)
        delay = timeout  # (less the wait for room, if there was one)
        try:
            mailbox.put(asking)
        except MailboxFull:
            if timeout is None:
                await mailbox.wait_for_room()
            else:  # the timeout covers the wait for room too
                started = loop.time()
                try:
                    await mailbox.wait_for_room(timeout)
                except asyncio.TimeoutError as error:
                    if error.args:  # said already (a supervisor's: see _supervisor)
                        raise
                    raise asyncio.TimeoutError(
                        f"{mailbox.identifier}'s mailbox had no room for {type(message).__name__} "
                        f"within {timeout} s"
                    ) from None
                delay = max(timeout - (loop.time() - started), 0.0)
            if mailbox.closed:
                raise self._refused(message) from None
            mailbox.append(asking)
        if _observing:
            _notify(self, message, True, asking)
        if delay is None:
            return await future
        expiry = loop.call_later(delay, _expire, future)
        try:
            return await future
        except _Expired:
            raise asyncio.TimeoutError(
                f"no reply from {mailbox.identifier} to {type(message).__name__} within {timeout:g} s"
            ) from None
        finally:
            expiry.cancel()

    def _refused(self, message: Any) -> ActorStopped:
        """An ask to a stopped actor: observed as sent (see `observe_sends`), and refused (with
        why it stopped, if it failed and its watchers were told)."""
        if _observing:
            _notify(self, message, True)
        mailbox = self._mailbox
        return ActorStopped(mailbox.identifier, message, mailbox.stop_reason)

    async def tell_payload(self, payload: Payload, /) -> None:
        """Validate a wire payload with the actor's protocol (``Actor.protocol.validate``), then tell
        the typed message.

        Raises `InvalidPayload` if the protocol does not accept ``payload``, and ``TypeError`` if
        this reference does not accept its message type (a narrowed reference); nothing is queued
        then.
        """
        self.tell_nowait(self._wire_protocol().validate(payload))

    async def ask_payload(self, payload: Payload, /, timeout: float | None = None) -> Any:
        """Validate a wire payload with the actor's protocol, then ask with the typed message and
        return the reply (a Python value: ``Actor.protocol.dump`` gives a reply message's wire form).

        Raises `InvalidPayload` (nothing is queued), then what `ask` raises.
        """
        return await self.ask(self._wire_protocol().validate(payload), timeout)

    def _wire_protocol(self) -> ActorProtocol[Any]:
        # Imported here: the wire layer (and its validators) loads only when payloads are used.
        from ._protocol import protocol_of_class

        actor: Actor[Any] = self._mailbox.actor
        return protocol_of_class(type(actor))

    def __repr__(self) -> str:
        return f"<ActorRef {self.identifier}>"


class Reference(BaseRef):
    """A plain inbox for code that is not an actor: ``await me.inbox.get()``.

    Pass it as a message's ``sender`` to receive replies and other messages in ``inbox``.
    """

    __slots__ = ("inbox", "_identifier")

    def __init__(self, identifier: str | None = None) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._identifier = identifier if identifier is not None else f"reference-{next(_reference_serials)}"

    @property
    def identifier(self) -> str:
        """This inbox's name."""
        return self._identifier

    def tell_nowait(self, message: Any, /) -> None:
        """Put ``message`` in the inbox. Raises ``TypeError`` if it is not a `Message`."""
        check_message(message)
        hand_off(message)
        self.inbox.put_nowait(message)
        if _observing:
            _notify(self, message, False)


# -- observing sends --------------------------------------------------------------------------

SendObserver = Callable[[BaseRef, "Message[Any]", bool], None]
"""What `observe_sends` calls for each send: ``(recipient, message, asked)``."""


class _Observation:
    __slots__ = ("callback", "open")

    def __init__(self, callback: SendObserver) -> None:
        self.callback = callback
        self.open = True


_observing = False
"""True while an `observe_sends` block is open, in any context, or a send hook is set. While it is
false (always, unless a test kit or a tracer is at work), a send costs one test of this global and
nothing more: a bool, not the count, because the interpreter tests ``False`` faster than ``0``."""

_open_blocks = 0
"""How many `observe_sends` blocks are open, in any context."""

_observations: ContextVar[tuple[_Observation, ...]] = ContextVar("actorio_send_observations", default=())


_hooks: tuple[SendHook, ...] = ()
"""The process-wide send hooks (`add_send_hook`), called for every send in any context."""


def _notify(
    recipient: BaseRef, message: Message[Any], asked: bool, queued: Message[Any] | None = None
) -> None:
    for observation in _observations.get():
        if observation.open:
            observation.callback(recipient, message, asked)
    for hook in _hooks:
        hook(recipient, message if queued is None else queued, asked)


SendHook = Callable[[BaseRef, "Message[Any]", bool], None]
"""What `add_send_hook` calls for each send: ``(recipient, message as queued, asked)``."""


def add_send_hook(hook: SendHook) -> None:
    """Call ``hook(recipient, message, asked)`` for every tell and ask through an `ActorRef` or a
    `Reference`, in any task, from now on (until `remove_send_hook`), as `observe_sends` calls its
    callback, except that ``message`` is the message as queued: for an ask, the copy that carries
    it (its ``sender`` is the ask's `AskRef`, as the handler sees it); for an ask refused because
    the actor has stopped, the message given. The seam for tracing (the context of the code that
    sends), where `observe_sends` is a test kit's. Adding a hook twice adds it once."""
    global _hooks, _observing
    if hook not in _hooks:
        _hooks = (*_hooks, hook)
    _observing = True


def remove_send_hook(hook: SendHook) -> None:
    """Stop calling ``hook`` (see `add_send_hook`); nothing happens if it was not added."""
    global _hooks, _observing
    _hooks = tuple(h for h in _hooks if h != hook)  # ==: a bound method is made anew at each access
    _observing = _open_blocks > 0 or bool(_hooks)


@contextmanager
def observe_sends(callback: SendObserver) -> Generator[None, None, None]:
    """Call ``callback(recipient, message, asked)`` for every message told or asked through an
    `ActorRef` or a `Reference` in the current context while the block is open: in this task, and
    in the tasks created from it meanwhile (they inherit its context variables); sends of other
    tasks (other actors' mainloops among them) are not observed.

    ``recipient`` is the reference the message went through, ``message`` the message as given to
    ``tell`` / ``ask`` (an ask's one-shot sender is not in it), ``asked`` true for an ask. The
    callback runs in the sender's task, once the message is queued, or once it is refused
    because the recipient has stopped (a dead letter, or an ask that fails with `ActorStopped`);
    not for a message refused at the sender (``TypeError``, `MailboxFull` from ``tell_nowait``).
    Replies (what is told to an ask's sender) are not sends. It must return quickly and not
    raise: what it raises reaches the sender, after the message went.

    Blocks nest, in one context and across tasks: each observes on its own. The seam for a test
    kit (``actorio.testing.run_handler`` records a handler's sends with it) and for tracing.
    While no block is open anywhere, a send costs one test of a module global.
    """
    global _observing, _open_blocks
    observation = _Observation(callback)
    token = _observations.set((*_observations.get(), observation))
    _open_blocks += 1
    _observing = True
    try:
        yield
    finally:
        observation.open = False  # the tasks created meanwhile keep the context, not the observer
        _open_blocks -= 1
        _observing = _open_blocks > 0 or bool(_hooks)
        _observations.reset(token)


@overload
async def ask(
    ref: ActorRef[Message[Any]] | Actor[Message[Any]], message: Message[Any], timeout: float | None = None
) -> Any: ...
@overload
async def ask(ref: ActorRef[M] | Actor[M], message: Request[M, R], timeout: float | None = None) -> R: ...
async def ask(ref: ActorRef[Any] | Actor[Any], message: Any, timeout: float | None = None) -> Any:
    """Send ``message`` to ``ref`` (a reference or an actor) and wait for the reply:
    ``await ask(greeter, Greet(name="x"))``.

    The same as ``ref.ask(message, timeout)``; see `ActorRef.ask`. Statically, both the reply type
    and the message's membership in ``ref``'s protocol are checked.
    """
    return await ref.ask(message, timeout=timeout)
