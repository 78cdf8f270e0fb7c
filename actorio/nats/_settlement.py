"""Settling a stored message: the durable rules shared by every JetStream mailbox.

Owns what happens to one message fetched from a durable consumer, whoever fetched it (a durable
publication's `Pump`, ``_durable``; a durable entity type's shard pump, ``_durable_shards``):

- `Settlement.handle`: the message is validated with the actor's protocol where it enters (an
  invalid one never reaches a handler: a dead letter ``invalid``, terminated), handed to the
  actor's running incarnation (waiting for the next one while a supervised child restarts), and
  acknowledged once handled (an ask: once its reply was sent);
- the durable rules for a message that keeps failing: a handler that failed has its message
  delivered again after ``Durable.retry_backoff``'s delay, up to ``max_deliver`` deliveries,
  then moved to the dead-letter stream (``_dead_letter_stream``); a message delivered more than
  twice ``max_deliver`` times without an outcome (processes that died holding it, as far as the
  consumer's delivery count knows: a durable entity type's shard consumer is made anew by each
  owner, so its counts start again at a move), or whose delivery failed in the node itself, is
  moved there at once;
- `Failures`: which told messages' handlers failed (one dead-letter listener for all the
  messages a set of settlements is watching);
- `give_back` and `report_progress`, the negative and the "still working" acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg

from .. import Actor, DeadLetter, InvalidPayload, Message, dead_letters
from ..lowlevel import LogLimit, Mailbox, extracted, printable, report_transport
from ._codec import REPLY, answered
from ._dead_letter_stream import DeadLetterStreams, DeliveryLimitReached, dead_letter_stream
from ._entity_persistence import ready_for_messages, recovery_failed
from ._publication import queue_ask, wait_handled

if TYPE_CHECKING:
    from ._durable import Durable
    from ._publication import Receiver

__all__ = ["Failures", "Settlement", "give_back", "report_progress"]

_logger = logging.getLogger("actorio.nats")


class Failures:
    """Which told messages' handlers failed: the actor records a failed handler's message as a
    dead letter (reason ``failed``), whether it then resumes or restarts; this one listener
    notes the error for each message being watched."""

    def __init__(self) -> None:
        self._watching: dict[int, tuple[Message[Any], str, list[BaseException]]] = {}
        self._open = False

    def open(self) -> None:
        """Start listening to dead letters (once)."""
        if not self._open:
            self._open = True
            dead_letters.add_listener(self._on_dead_letter)

    def close(self) -> None:
        """Stop listening."""
        self._open = False
        dead_letters.remove_listener(self._on_dead_letter)

    def watch(self, message: Message[Any], recipient: str) -> None:
        """Watch ``message`` told to ``recipient`` until `unwatch`."""
        self._watching[id(message)] = (message, recipient, [])

    def unwatch(self, message: Message[Any]) -> BaseException | None:
        """Stop watching ``message``: its handler's error, if it failed."""
        found = self._watching.pop(id(message), None)
        return found[2][0] if found is not None and found[2] else None

    def _on_dead_letter(self, letter: DeadLetter) -> None:
        if letter.reason != "failed":
            return
        found = self._watching.get(id(letter.message))
        if found is not None and letter.message is found[0] and letter.recipient == found[1]:
            found[2][:] = [letter.error] if letter.error is not None else []


class Settlement:
    """Hands stored messages to one actor (its mailbox cell: each incarnation in turn) and
    settles them by the durable rules (see the module).

    ``name`` names the mailbox in logs and in the dead-letter stream's headers; ``dead_name``
    is the name whose dead-letter stream (``<prefix>.dlq.<dead_name>``) takes the messages
    given up on; ``closing`` says when the caller stops (a message not yet handled is then
    given back); ``logs`` bounds its log lines (shared by many settlements: one limit for all);
    ``fenced``, if given, says when the caller no longer owns what it reads (a lease over): a
    message handled by then is left unsettled (neither acknowledged nor given back), for the
    next owner, which reads it again. A persistent actor's incarnation is handed messages only
    once it has recovered its state; with ``ends_at_failed_recovery`` (a durable entity type's
    key, which then counts a failed start), an incarnation whose recovery failed ends `handle`
    (False) rather than being waited out.
    """

    def __init__(
        self,
        receiver: Receiver,
        settings: Durable,
        *,
        mailbox: Mailbox,
        name: str,
        dead: DeadLetterStreams,
        dead_name: str,
        failures: Failures,
        closing: Callable[[], bool],
        logs: LogLimit | None = None,
        fenced: Callable[[], bool] | None = None,
        ends_at_failed_recovery: bool = False,
    ) -> None:
        self._receiver = receiver
        self._settings = settings
        self._mailbox = mailbox
        self._name = name
        self._dead = dead
        self._dead_name = dead_name
        self._failures = failures
        self._closing = closing
        self._logs = logs if logs is not None else LogLimit(_logger)
        self._fenced = fenced
        self._ends_at_failed_recovery = ends_at_failed_recovery
        self.redelivering = False
        """True when the message `handle` last settled was given back to be delivered again
        later (its handler failed, or the dead-letter stream did not store it): a caller that
        keeps an order waits for it."""
        self.not_recovered = False
        """True when `handle` last returned False because the actor's incarnation failed to recover
        (``ends_at_failed_recovery``): not a delivery; its caller keeps the message."""

    async def handle(self, msg: Msg) -> bool:
        """Deliver one stored message and settle it (acknowledged once handled; see `_failed` if
        its handler failed); False if the actor stopped first (the caller gives it back), or
        its incarnation failed to recover (`not_recovered`: the caller keeps it)."""
        self.redelivering = self.not_recovered = False
        actor = await self._incarnation()
        if actor is None:
            return False
        deliveries = msg.metadata.num_delivered
        limit = self._settings.max_deliver
        if limit is not None and deliveries > 2 * limit:
            text = f"delivered {deliveries} times without an outcome (to processes that died holding it)"
            kind = "DeliveryLimitReached"
            await self._give_up(msg, msg.data, actor.identifier, deliveries, kind, text, None)
            return True
        receiver = self._receiver
        reply = (msg.headers or {}).get(REPLY)
        report_transport("nats", "received", "ask" if reply else "tell")
        try:
            message = receiver.validate(actor, msg.data, msg.headers, reply)  # the reply checked too
        except InvalidPayload as error:
            await receiver.refuse(actor, error, reply, msg.data, answered(msg))
            await msg.term()  # never valid: not delivered again
            return True
        stopped = receiver.ended(actor)
        # A message not handled is taken back out of the mailbox, if it is still queued there,
        # before it is given back to the stream: a supervised child's restart keeps its mailbox,
        # and the message would otherwise be handled twice.
        if reply:
            with extracted(msg.headers):  # the sender's trace context, if a tracer propagates one
                asking, future = await queue_ask(actor, message)
            await asyncio.wait([future, stopped], return_when=asyncio.FIRST_COMPLETED)
            if stopped.done() and not future.done():
                self._mailbox.withdraw(asking)
                return False
            if not await receiver.answer(actor, message, future, reply, None, answered(msg)):
                return False
        else:
            self._failures.watch(message, actor.identifier)
            try:
                with extracted(msg.headers):
                    await actor.reference.tell(message)
                handled = await wait_handled(actor, stopped)
            finally:
                failure = self._failures.unwatch(message)
            if self._fenced is not None and self._fenced():
                return True  # past the lease: settling is the next owner's
            if failure is not None:
                await self._failed(msg, message, actor.identifier, deliveries, failure)
                return True
            if not handled:
                self._mailbox.withdraw(message)
                return False
        if self._fenced is not None and self._fenced():
            return True  # past the lease: settling is the next owner's
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()
        return True

    async def _failed(
        self, msg: Msg, message: Message[Any], recipient: str, deliveries: int, error: BaseException
    ) -> None:
        """The handler of a told message failed on its ``deliveries``-th delivery: it is delivered
        again after the retry backoff's delay, or, at ``max_deliver``, moved to the dead-letter
        stream. (Its failure is a dead letter already, recorded by the actor.)"""
        settings = self._settings
        limit = settings.max_deliver
        if limit is not None and deliveries >= limit:
            await self._give_up(msg, message, recipient, deliveries, type(error).__name__, str(error), error)
            return
        delay = settings.retry_delay(deliveries)
        self.redelivering = True
        self._logs.log(
            logging.INFO,
            "%s: %s failed on delivery %d of %s (%r); delivered again in %.3g s",
            self._name,
            type(message).__name__,
            deliveries,
            limit if limit is not None else "unlimited",
            error,
            delay,
        )
        with contextlib.suppress(nats.errors.Error):
            await msg.nak(delay=delay)

    async def node_failed(self, msg: Msg, error: Exception) -> None:
        """Delivering a stored message failed in this node (not in a handler): it would fail again
        wherever it went, so it is moved to the dead-letter stream at once."""
        self._logs.log(
            logging.ERROR, "%s: a stored message could not be delivered", self._name, exc_info=error
        )
        deliveries = msg.metadata.num_delivered
        await self._give_up(msg, msg.data, self._name, deliveries, type(error).__name__, str(error), error)

    async def _give_up(
        self,
        msg: Msg,
        message: Any,
        recipient: str,
        deliveries: int,
        error_type: str,
        text: str,
        cause: BaseException | None,
    ) -> None:
        """Move ``msg`` to the dead-letter stream, record it (``actorio.dead_letters``, reason
        ``failed``, a `DeliveryLimitReached`), take it out of its stream and, if it is an ask,
        answer it with that error (its asker would otherwise wait for its timeout); if the
        dead-letter stream does not store it, give it back to be delivered again later instead."""
        if not await self._dead.move(msg, self._dead_name, deliveries, error_type, text):
            delay = self._settings.retry_delay(deliveries)
            self.redelivering = True
            self._logs.log(
                logging.WARNING,
                "%s: the dead-letter stream did not store a message; delivered again in %.3g s",
                self._name,
                delay,
            )
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=delay)
            return
        gave_up = DeliveryLimitReached(
            self._name, deliveries, dead_letter_stream(msg.metadata.stream), error_type, text
        )
        gave_up.__cause__ = cause
        dead_letters.record(message, recipient, "failed", gave_up)
        self._logs.log(logging.WARNING, "%s", printable(str(gave_up)))  # the error's text: any
        with contextlib.suppress(nats.errors.Error):
            await msg.term()
        reply = (msg.headers or {}).get(REPLY)
        await self._receiver.send_error(recipient, reply, gave_up, answered(msg))

    async def _incarnation(self) -> Actor[Any] | None:
        """The actor's running incarnation (a persistent one once it has recovered); while a
        supervised child waits for its next one (a restart's backoff, a recovery), wait for it.
        None once the actor stopped for good (or its recovery failed: see the class)."""
        cell = self._mailbox
        seen: Actor[Any] | None = None  # the incarnation looked at last (since replaced, maybe)
        while True:
            actor = cell.actor
            if self._ends_at_failed_recovery and (
                recovery_failed(actor) or (seen is not None and seen is not actor and recovery_failed(seen))
            ):
                # (Also one replaced between two looks: a supervisor without backoff restarts at
                # once, or gave up and closed the mailbox.)
                self.not_recovered = True
                return None
            if cell.closed or self._closing():
                return None
            if actor.running and ready_for_messages(actor, cell):
                return actor
            seen = actor
            await asyncio.sleep(0.02)  # between incarnations: poll until the next one runs


async def give_back(messages: list[Msg]) -> None:
    """Negative acknowledgements: the stream delivers these messages again, to any process."""
    for msg in messages:
        with contextlib.suppress(nats.errors.Error):
            await msg.nak()


async def report_progress(waiting: list[Msg], interval: float) -> None:
    """Tell the stream, every ``interval`` seconds, that the fetched messages not yet handled
    are still being worked on (their redelivery delay starts again)."""
    while True:
        await asyncio.sleep(interval)  # a heartbeat period, not a wait for state
        for msg in list(waiting):
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()
