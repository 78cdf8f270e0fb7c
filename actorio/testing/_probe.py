"""TestProbe: a typed reference that records what it is told, and the assertions that read it."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import deque
from collections.abc import Callable
from types import CoroutineType
from typing import Annotated, Any, ClassVar, TypeVar, cast, overload

from pydantic import ConfigDict, PlainValidator
from typing_extensions import TypeVar as DefaultTypeVar

from .. import Actor, ActorRef, BaseRef, DataMessage, Message, Terminated, dead_letters
from ..lowlevel import actor_of, ask_message, mailbox_of, task_of, union_arms, unwatch, watch
from ._conversation import current_conversation
from ._describe import describe, describe_all, is_message, same_content

__all__ = ["DEFAULT_NO_MESSAGE_WITHIN", "DEFAULT_TIMEOUT", "AskFailed", "TestProbe"]

DEFAULT_TIMEOUT = 3.0
"""Seconds (of the loop's time) that a probe waits for what it expects, unless told otherwise."""

DEFAULT_NO_MESSAGE_WITHIN = 0.1
"""Seconds (of the loop's time) that `TestProbe.expect_no_message` watches by default."""

M = DefaultTypeVar("M", bound=Message[Any], default=Message[Any])
T = TypeVar("T", bound=Message[Any])
E = TypeVar("E", bound=BaseException)
M1 = TypeVar("M1", bound=Message[Any])
M2 = TypeVar("M2", bound=Message[Any])
M3 = TypeVar("M3", bound=Message[Any])
M4 = TypeVar("M4", bound=Message[Any])

_probe_serials = itertools.count(1)
_HISTORY = 5  # consumed messages a failure recalls


def _a_message(value: object) -> Message[Any]:
    if not is_message(value):
        raise ValueError(f"request must be a Message, not {type(value).__name__}")
    return value


class AskFailed(Message):
    """What a probe receives when an ask made with `TestProbe.asking` fails: ``request`` is the
    message asked, ``error`` what the ask raised (the handler's exception, `ActorStopped`, ...)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    request: Annotated[Message[Any], PlainValidator(_a_message)]  # kept as it is, not re-validated
    error: BaseException


class _ProbeTarget:
    """What an `ActorRef` reads from its actor and mailbox, for a probe: a mailbox that records
    (``put``), unbounded and never closed, and an identifier. Telling or asking a probe therefore
    runs the reference's own code: the protocol check, the ask's one-shot sender, the hand-off
    count."""

    __slots__ = ("identifier", "queue", "history", "waiters", "actor", "watchers", "termination")

    closed = False  # a probe never stops: whoever watches it waits for nothing
    waiting: asyncio.Future[None] | None = None  # no mainloop reads it
    reader: CoroutineType[Any, Any, None] | None = None

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.queue: deque[Message[Any]] = deque()
        self.history: deque[Message[Any]] = deque(maxlen=_HISTORY)
        self.waiters: list[asyncio.Future[None]] = []
        self.actor = self
        self.watchers: list[Any] | None = None
        self.termination: tuple[BaseException | None] | None = None

    def put(self, message: Message[Any]) -> None:
        self.queue.append(message)
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            _resolve(waiter)

    append = put
    put_system = put

    async def wait_for_room(self, timeout: float | None = None) -> None:
        """A probe is unbounded: there is always room."""

    @property
    def stop_reason(self) -> BaseException | None:  # a probe never stops
        return None

    def reject(self, message: Any) -> None:  # a probe is never closed
        dead_letters.record(message, self.identifier, "stopped")

    def __len__(self) -> int:
        return len(self.queue)

    def take(self) -> Message[Any]:
        message = self.queue.popleft()
        self.history.append(message)
        return message

    async def wait_arrival(self, deadline: float) -> None:
        """Return when a message is queued, or at ``deadline`` (loop time), whichever is first."""
        if self.queue:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_at(deadline, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def answer(self, request: Message[Any], future: asyncio.Future[Any]) -> None:
        """An ask made with `TestProbe.asking` is over: record its reply (or failure)."""
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.put(AskFailed(request=request, error=error))
            return
        reply: object = future.result()
        if is_message(reply):
            self.put(reply)
        else:
            self.put(DataMessage(data=reply))


class _NoticeWaiter(BaseRef):
    """A watcher that completes a future with the `Terminated` notice."""

    __slots__ = ("notice",)

    def __init__(self, notice: asyncio.Future[Terminated]) -> None:
        self.notice = notice

    @property
    def identifier(self) -> str:
        return "expect-terminated"

    def tell_nowait(self, message: Any, /) -> None:
        if isinstance(message, Terminated) and not self.notice.done():
            self.notice.set_result(message)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _expected(expected: object) -> str:
    if isinstance(expected, type):
        return f"a {expected.__name__}"
    return describe(expected)


def _matches(expected: object, message: Message[Any]) -> bool:
    if isinstance(expected, type):
        return isinstance(message, expected)
    return same_content(expected, message)


def _actor_of(target: Actor[Any] | ActorRef[Any]) -> Actor[Any]:
    if isinstance(target, Actor):
        return target
    inner = actor_of(target)
    if inner is not None:
        return inner
    raise TypeError(f"{target!r} is not the reference of an actor: a probe never terminates")


class TestProbe(ActorRef[M]):
    """A reference that records every message told to it, and assertions on what it received.

    A ``TestProbe[P]`` is an ``ActorRef[P]``: pass it wherever an actor expects a reference of
    that protocol (statically too), or as a message's ``sender``. ``TestProbe(Greeting)`` (up to
    four message classes) is typed ``TestProbe[Greeting]`` and refuses other messages at the
    sender, as an actor's reference does; ``TestProbe()`` accepts any message. Telling it never
    blocks; asking it queues the message with a one-shot sender: ``await msg.reply(x)`` on the
    received message answers the ask.

    The ``expect_*`` and ``receive_*`` methods take messages in arrival order. Each waits at most
    ``timeout`` seconds of the loop's time (virtual under a `MockClock`) and raises
    ``AssertionError`` naming what arrived instead (or that nothing did), and the messages the
    probe consumed last. A probe belongs to one event loop at a time.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name
    __slots__ = ("_state",)

    @overload
    def __init__(self: TestProbe[M1], t1: type[M1], /, *, name: str | None = None) -> None: ...
    @overload
    def __init__(
        self: TestProbe[M1 | M2], t1: type[M1], t2: type[M2], /, *, name: str | None = None
    ) -> None: ...
    @overload
    def __init__(
        self: TestProbe[M1 | M2 | M3],
        t1: type[M1],
        t2: type[M2],
        t3: type[M3],
        /,
        *,
        name: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: TestProbe[M1 | M2 | M3 | M4],
        t1: type[M1],
        t2: type[M2],
        t3: type[M3],
        t4: type[M4],
        /,
        *,
        name: str | None = None,
    ) -> None: ...
    @overload
    def __init__(self, *, name: str | None = None) -> None: ...
    def __init__(self, *accepts: type[Message[Any]], name: str | None = None) -> None:
        for accepted in cast(tuple[object, ...], accepts):  # checked at run time too, for untyped callers
            if not (isinstance(accepted, type) and issubclass(accepted, Message)):
                arms = union_arms(accepted)
                if len(arms) > 1 and all(isinstance(arm, type) and issubclass(arm, Message) for arm in arms):
                    names = ", ".join(arm.__name__ for arm in arms)
                    raise TypeError(
                        f"TestProbe() takes one Message subclass per argument, not a union: "
                        f"TestProbe({names}), not TestProbe({' | '.join(arm.__name__ for arm in arms)})"
                    )
                raise TypeError(f"TestProbe() takes Message subclasses, not {accepted!r}")
        state = _ProbeTarget(name if name is not None else f"probe-{next(_probe_serials)}")
        # An ActorRef of a duck-typed actor: see _ProbeTarget, and the report on ActorRef's target.
        super().__init__(state, tuple(accepts) or None)
        self._state = state

    def __repr__(self) -> str:
        return f"<TestProbe {self.identifier}>"

    @property
    def queued(self) -> tuple[Message[Any], ...]:
        """The messages received and not yet taken by an ``expect_*`` or ``receive_*`` call."""
        return tuple(self._state.queue)

    def asking(self, message: T) -> T:
        """A copy of ``message`` that, told to an actor, is served as an ask whose reply comes to
        this probe.

        The reply (the handler's return value, or what it told ``msg.sender``) arrives as it is if
        it is a `Message`, else wrapped in a `DataMessage`; if the ask fails (the handler raised,
        the actor stopped first), an `AskFailed` arrives. ``await manager.tell(probe.asking(Compute()))``
        is how a probe sees typed replies, which a handler returns only to asks. Must be called
        in a running event loop.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(functools.partial(self._state.answer, message))
        return ask_message(message, future)

    def _failure(self, text: str, earlier: tuple[Message[Any], ...]) -> AssertionError:
        """An assertion failure; ``earlier``: the messages taken before this call, recalled."""
        if earlier:
            text += f" (the last messages it took: {describe_all(earlier)})"
        conversation = current_conversation()
        if conversation is not None:
            text += f"\nthe conversation so far (Mermaid):\n{conversation.sequence_diagram()}"
        return AssertionError(f"{self.identifier} {text}")

    def _deadline(self, timeout: float) -> float:
        return asyncio.get_running_loop().time() + timeout

    @overload
    async def expect_message(self, expected: type[T], timeout: float = DEFAULT_TIMEOUT) -> T: ...
    @overload
    async def expect_message(self, expected: T, timeout: float = DEFAULT_TIMEOUT) -> T: ...
    async def expect_message(self, expected: type[T] | T, timeout: float = DEFAULT_TIMEOUT) -> T:
        """Take the next message and return it, typed, if it is ``expected``.

        ``expected`` is a message class (the message must be an instance of it) or a message
        (equal in class and in every field but ``sender`` and ``creation_date``). Raises
        ``AssertionError`` naming the message that arrived instead (and those queued after it),
        or saying that none arrived within ``timeout`` seconds.
        """
        __tracebackhide__ = True
        state = self._state
        earlier = tuple(state.history)
        await state.wait_arrival(self._deadline(timeout))
        if not state.queue:
            raise self._failure(
                f"expected {_expected(expected)} within {timeout:g} s, but no message arrived", earlier
            )
        message = state.take()
        if not _matches(expected, message):
            text = f"expected {_expected(expected)}, but received {describe(message)}"
            if state.queue:
                text += f"; queued after it: {describe_all(state.queue)}"
            raise self._failure(text, earlier)
        return cast(T, message)

    async def receive_message(self, timeout: float = DEFAULT_TIMEOUT) -> Message[Any]:
        """Take the next message, whatever it is; ``AssertionError`` if none arrives in time."""
        __tracebackhide__ = True
        return (await self.receive_messages(1, timeout))[0]

    async def receive_messages(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> list[Message[Any]]:
        """Take the next ``n`` messages, in arrival order.

        Raises ``AssertionError`` naming the messages that did arrive if fewer than ``n`` do
        within ``timeout`` seconds (in all); those are taken too.
        """
        __tracebackhide__ = True
        state = self._state
        earlier = tuple(state.history)
        deadline = self._deadline(timeout)
        received: list[Message[Any]] = []
        while len(received) < n:
            await state.wait_arrival(deadline)
            if not state.queue:
                got = f"received {len(received)}: {describe_all(received)}" if received else "none arrived"
                raise self._failure(f"expected {n} messages within {timeout:g} s, but {got}", earlier)
            received.append(state.take())
        return received

    async def expect_no_message(self, within: float = DEFAULT_NO_MESSAGE_WITHIN) -> None:
        """Watch for ``within`` seconds, and raise ``AssertionError`` naming the first message
        that arrives (or that was already queued). ``within=0`` checks the queue only."""
        __tracebackhide__ = True
        state = self._state
        earlier = tuple(state.history)
        await state.wait_arrival(self._deadline(within))
        if state.queue:
            message = state.take()
            raise self._failure(
                f"expected no message within {within:g} s, but received {describe(message)}", earlier
            )

    @overload
    async def fish_for_message(self, match: type[T], timeout: float = DEFAULT_TIMEOUT) -> T: ...
    @overload
    async def fish_for_message(
        self, match: Callable[[Message[Any]], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> Message[Any]: ...
    async def fish_for_message(
        self, match: type[Message[Any]] | Callable[[Message[Any]], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> Message[Any]:
        """Take messages until one matches, and return it; the ones before it are discarded.

        ``match`` is a message class or a predicate. Raises ``AssertionError`` naming the
        discarded messages if none matches within ``timeout`` seconds (in all).
        """
        __tracebackhide__ = True
        state = self._state
        earlier = tuple(state.history)
        deadline = self._deadline(timeout)
        predicate = match if not isinstance(match, type) else functools.partial(_matches, match)
        discarded: list[Message[Any]] = []
        while True:
            await state.wait_arrival(deadline)
            if not state.queue:
                what = f"a {match.__name__}" if isinstance(match, type) else f"a message matching {match!r}"
                got = f"received only {describe_all(discarded)}" if discarded else "no message arrived"
                raise self._failure(f"fished for {what} for {timeout:g} s, but {got}", earlier)
            message = state.take()
            if predicate(message):
                return message
            discarded.append(message)

    @overload
    async def expect_terminated(
        self, target: Actor[Any] | ActorRef[Any], timeout: float = DEFAULT_TIMEOUT, *, error: None = None
    ) -> None: ...
    @overload
    async def expect_terminated(
        self, target: Actor[Any] | ActorRef[Any], timeout: float = DEFAULT_TIMEOUT, *, error: type[E]
    ) -> E: ...
    async def expect_terminated(
        self,
        target: Actor[Any] | ActorRef[Any],
        timeout: float = DEFAULT_TIMEOUT,
        *,
        error: type[BaseException] | None = None,
    ) -> BaseException | None:
        """Wait until the actor ``target`` (an actor or its reference) has stopped for good: its
        mainloop and teardown are over (a supervised child's restart is not a stop).

        Without ``error`` the actor must stop cleanly; with ``error`` it must fail with that
        exception type, which is returned (the kit's fixture then counts the failure as
        noticed). Raises ``AssertionError`` if it is still running after ``timeout`` seconds,
        or stopped otherwise than expected; ``TypeError`` for a probe's reference.

        It watches the actor (death watch) without taking anything from this probe's queue; to
        receive the `Terminated` notice as a message instead, use `watch`.
        """
        __tracebackhide__ = True
        earlier: tuple[Message[Any], ...] = ()  # the probe's own messages are beside the point
        actor = _actor_of(target)
        ref = actor.reference
        if task_of(actor) is None and not actor.stopped:
            raise self._failure(f"expected {actor.identifier} to stop, but it was never started", earlier)
        loop = asyncio.get_running_loop()
        notice: asyncio.Future[Terminated] = loop.create_future()
        waiter = _NoticeWaiter(notice)
        watch(ref, waiter)
        if not notice.done():
            await asyncio.wait([notice], timeout=timeout)
        if not notice.done():
            unwatch(ref, waiter)
            mailbox = mailbox_of(ref)
            queued = len(mailbox) if mailbox is not None else 0
            raise self._failure(
                f"expected {actor.identifier} to stop within {timeout:g} s, "
                f"but it is still running ({queued} messages queued)",
                earlier,
            )
        failure = notice.result().reason
        if isinstance(failure, asyncio.CancelledError):
            failure = None  # cancelled by a stop's timeout, or before it ran: stopped
        last = actor_of(ref)
        task = task_of(last) if last is not None else None
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # noticed: the kit does not report it as a crash
        if error is None:
            if failure is not None:
                raise self._failure(
                    f"expected {actor.identifier} to stop, but it failed with {failure!r}", earlier
                ) from failure
            return None
        if failure is None:
            raise self._failure(
                f"expected {actor.identifier} to fail with {error.__name__}, but it stopped without an error",
                earlier,
            )
        if not isinstance(failure, error):
            raise self._failure(
                f"expected {actor.identifier} to fail with {error.__name__}, but it failed with {failure!r}",
                earlier,
            ) from failure
        return failure

    def watch(self, target: Actor[Any] | ActorRef[Any]) -> None:
        """Receive a `Terminated` message (like any other, e.g. with
        ``expect_message(Terminated)``) when ``target`` stops for good; at once if it has."""
        ref = _actor_of(target).reference
        watch(ref, self)
