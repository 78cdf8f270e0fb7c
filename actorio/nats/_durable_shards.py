"""The shard pump of a durable entity type: one consumer per shard, the shard's keys inside it.

Owns `ShardPump`: the inlet of one active shard (a shard is what a durable type places, leases
and fences, as a plain type does a key; ``_durable_entities``). When the shard's activation
starts, its pump makes the shard's durable pull consumer anew (deleted, then created delivering
every stored message: the stream is a work queue, so that is exactly what no owner
acknowledged, in stream order), then fetches in batches while the activation holds its lease.
Each message goes to its key's entity, started here from the type's factory on its key's first
message (the keys of a shard live on the shard's owner) and stopped when idle, when its
supervision gives up, or when the shard stops. Per key, one message is handled at a time, in
stream order: the key's later messages wait in the pump, and a message given back (its handler
failed and it waits for its retry, or its entity stopped first) is handled before any later one
of its key. Other keys go on meanwhile. Each message is settled by the durable rules
(``_settlement``). A message whose subject names no key of the shard (forged) is dropped, a
dead letter of the process (``_forged_subjects``); the messages of keys whose entity cannot
start beyond `stuck_limit` (half the pump) are moved to the dead-letter stream, so that such
keys never stop the shard's other keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..lowlevel import Mailbox
from . import _forged_subjects as forged_subjects
from ._codec import REPLY
from ._entity_persistence import WAKE, failed_start, recovery_failed
from ._placement import check_key, entity_name
from ._settlement import Settlement, give_back
from ._shard_keys import MAX_ACK_PENDING, ShardKey, stuck_limit, to_move

if TYPE_CHECKING:
    from ._durable_entities import DurableMailbox
    from ._entity_host import Activation
    from ._keeper import PublicationSupervisor

__all__ = ["ShardPump", "consumer_name"]

_logger = logging.getLogger("actorio.nats")

_BATCH = 128  # messages asked for by one fetch


def consumer_name(shard: int) -> str:
    """The durable consumer of ``shard``: ``shard-<n>``."""
    return f"shard-{shard}"


class ShardPump:
    """One active shard's inlet (see the module)."""

    def __init__(self, mailbox: DurableMailbox, activation: Activation) -> None:
        self._mailbox = mailbox
        self.activation = activation
        self.shard = int(activation.key)
        self.keys: dict[str, ShardKey] = {}
        self._held: dict[int, Msg] = {}  # every fetched message not yet settled, by stream sequence
        self._room = asyncio.Event()
        self._stopping = False
        self._drained = False  # the last fetch found nothing
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        self._moving: dict[int, asyncio.Task[Any]] = {}  # trimmed messages being moved, by sequence
        self._moved: dict[int, None] = {}  # the last messages moved (a copy is acknowledged)
        self._stopped = False  # stop() waited for the moves it could: later ones must not settle
        self._turns = 0  # wakes and polls of a full pump: a new one lets `_trim` ask the server
        self._nothing_behind = -1  # the turn at which the server said nothing waits behind
        self._base = mailbox.subject_of_shard(self.shard)[:-1]  # "<prefix>.mailbox.<type>.<n>."

    def start(self) -> None:
        self._task = self._mailbox.spawn(self._run())
        self._ticker = self._mailbox.spawn(self._tick_forever())

    def idle(self) -> bool:
        """No key active, nothing held, and the last fetch found nothing: the shard may go."""
        return not self.keys and not self._held and self._drained

    def woken(self) -> None:
        """A wake reached the active shard: something was stored; it is not idle until fetched."""
        self._drained = False
        self._turns += 1

    def _fenced(self) -> bool:
        """The shard's lease is over by this node's clock: it must not settle what it read."""
        lease = self.activation.lease
        return lease is None or not lease.valid(self._mailbox.clock())

    def _holding(self) -> bool:
        """The activation may act: not stopping, and its lease valid by this node's clock."""
        lease = self.activation.lease
        return not self._stopping and lease is not None and lease.valid(self._mailbox.clock())

    # -- the consumer ----------------------------------------------------------------------------

    async def _bind(self, *, anew: bool) -> JetStreamContext.PullSubscription:
        """Bind to the shard's consumer; ``anew`` (a new owner): delete it first, so that every
        message no owner acknowledged is delivered again, in stream order (delivery counts start
        again)."""
        mailbox = self._mailbox
        js, name = mailbox.js, consumer_name(self.shard)
        if anew:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(mailbox.stream, name)
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=mailbox.subject_of_shard(self.shard),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=mailbox.lease,
            max_ack_pending=MAX_ACK_PENDING,
            max_deliver=-1,
            inactive_threshold=max(3600.0, 10 * mailbox.lease),
        )
        # nats-py leaves ``**params`` unannotated in add_consumer.
        await js.add_consumer(mailbox.stream, config)  # pyright: ignore[reportUnknownMemberType]
        return await js.pull_subscribe_bind(durable=name, stream=mailbox.stream)

    async def _run(self) -> None:
        mailbox = self._mailbox
        poll = min(5.0, max(mailbox.lease / 2, 0.5))
        failures = 0
        anew = True
        while self._holding():
            room = MAX_ACK_PENDING - len(self._held)
            if room <= 0:
                self._room.clear()
                self._turns += 1  # (a wake can be lost: the poll asks anyway)
                await self._trim()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._room.wait(), poll)
                continue
            try:
                if self._pull is None:
                    self._pull = await self._bind(anew=anew)
                    anew = False
                messages = await self._pull.fetch(min(room, _BATCH), timeout=poll)
                failures = 0
            except asyncio.TimeoutError:  # nats-py's, or asyncio's from a batch fetch (3.10: no OSError)
                self._drained = True
                continue
            except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
                failures += 1
                _logger.debug("%s/%d: fetch failed (%r)", mailbox.entity_type, self.shard, error)
                pull, self._pull = self._pull, None  # bound again (made again if lost) next time
                if pull is not None:
                    with contextlib.suppress(nats.errors.Error):
                        await pull.unsubscribe()
                if failures == 5:
                    mailbox.logs.log(
                        logging.WARNING,
                        "%s/%d: fetch keeps failing: %r",
                        mailbox.entity_type,
                        self.shard,
                        error,
                    )
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))  # the server away: back off
                continue
            if not self._holding():
                if not self._fenced():  # (past the lease, they are the next owner's: untouched)
                    await give_back(messages)
                return
            self._drained = False
            for msg in messages:
                self._accept(msg)

    def _accept(self, msg: Msg) -> None:
        """Queue ``msg`` behind its key's earlier messages (a copy delivered again replaces the
        one held), and have the key's worker go on."""
        mailbox = self._mailbox
        key = msg.subject[len(self._base) :] if msg.subject.startswith(self._base) else ""
        try:
            check_key(key)
            if mailbox.shard_of(key) != self.shard:
                raise ValueError("a key of another shard")
        except ValueError:
            mailbox.spawn(self._forged(msg))
            return
        seq = msg.metadata.sequence.stream
        if seq in self._moving:
            return  # a copy of a message being moved (settled by its move, or given back)
        if seq in self._moved:  # a copy of one moved (its term was lost): not handled
            mailbox.spawn(_ack(msg))
            return
        state = self.keys.get(key)
        if state is not None and seq <= state.handled:
            # A copy of a message handled and acknowledged already (its acknowledgement was
            # lost): acknowledged again, not handled again, and never after a later one.
            mailbox.spawn(_ack(msg))
            return
        self._held[seq] = msg
        if state is None:
            state = self.keys[key] = ShardKey(key, mailbox.clock())
        state.waiting[seq] = msg
        self._go_on(state)

    def _go_on(self, state: ShardKey) -> None:
        if (
            state.worker is None
            and state.retiring is None
            and state.waiting
            and not self._stopping
            and self._mailbox.clock() >= state.not_before
        ):
            state.worker = self._mailbox.spawn(self._work(state))

    async def _trim(self) -> None:
        """If the pump is full and messages wait behind it in the stream, and the keys whose entity
        cannot start (they failed as many starts in a row as `Durable.max_deliver`, 5 if None)
        hold more than `stuck_limit` of it, some of their messages go to the dead-letter stream
        until they hold that many, so that the other keys get room: those of the keys that
        failed the most starts first, each key's newest first, each keeping its oldest while
        others can go. Until moved, they stay held, copies delivered again are dropped, and
        their key's later messages wait for them (as for a message given back).

        Whether messages wait behind is asked of the server once a poll or a wake, not at each
        failed start of a stuck key: the answer stays "no" until something is stored."""
        after = self._mailbox.settings.max_deliver or 5
        turn = self._turns
        if len(self._held) < MAX_ACK_PENDING or turn == self._nothing_behind:
            return
        if not to_move(self.keys.values(), after):
            return
        if not await self._more_behind():
            self._nothing_behind = turn
            return  # nothing waits behind the pump: no other key needs the room
        for seq, state in to_move(self.keys.values(), after):  # (again: the await let things move)
            state.returned[seq] = math.inf  # until its move ends
            self._moving[seq] = self._mailbox.spawn(self._unstarted(state, state.waiting.pop(seq)))

    async def _more_behind(self) -> bool:
        """Whether the shard's consumer has messages it has not delivered yet (asked of the
        server: a wake can be lost); False if that cannot be read."""
        pull = self._pull
        if pull is None:
            return False
        try:
            info = await pull.consumer_info()
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
            return False
        return (info.num_pending or 0) > 0

    async def _unstarted(self, state: ShardKey, msg: Msg) -> None:
        """Move ``msg``, of a key whose entity cannot start, to the dead-letter stream (see
        `_trim`); given back, its key's later messages wait for it, if it was not moved."""
        seq = msg.metadata.sequence.stream
        text = (
            f"{entity_name(self._mailbox.entity_type, state.key)} could not start ({state.failed_starts} "
            f"tries, last: {state.start_error!r}), and keys that cannot start hold "
            f"{stuck_limit()} messages of shard {self.shard}"
        )
        moved = False
        try:
            if not self._done():
                lease = self.activation.lease
                owner = str(lease.claim) if lease is not None else ""
                moved = await self._mailbox.dead_letter_unstarted(
                    msg, text, state.start_error, self._done, owner
                )
        finally:
            self._moving.pop(seq, None)
            state.returned.pop(seq, None)
            if moved:
                self._moved[seq] = None
                if len(self._moved) > 2 * MAX_ACK_PENDING:
                    del self._moved[next(iter(self._moved))]
                self._settled(seq)
            else:
                self._returned(state, seq, self._mailbox.settings.retry_delay(msg.metadata.num_delivered))
            self._go_on(state)

    def _done(self) -> bool:
        """This activation may settle nothing more: its lease is over by this node's clock, or
        its stop stopped waiting for what was under way (the next owner may have it)."""
        return self._stopped or self._fenced()

    async def _forged(self, msg: Msg) -> None:
        """Drop a message whose subject names no key of this shard (``_forged_subjects``)."""
        if self._fenced():
            return
        text = f"the subject {msg.subject[:200]!r} names no valid entity key of shard {self.shard}"
        await forged_subjects.drop(self._mailbox, msg, text)

    # -- the keys ----------------------------------------------------------------------------------

    async def _work(self, state: ShardKey) -> None:
        """Handle the key's messages one at a time, in stream order, while the shard is held."""
        mailbox = self._mailbox
        try:
            while self._holding():
                msg = state.ready(mailbox.clock())
                if msg is None:
                    return
                state.current = msg.metadata.sequence.stream
                try:
                    await self._settle(state, msg)
                except Exception as error:  # not the handler's (settled above): this node's
                    mailbox.logs.log(
                        logging.ERROR,
                        "%s/%s: a message was not settled",
                        mailbox.entity_type,
                        state.key,
                        exc_info=error,
                    )
                    if not self._fenced():
                        await give_back([msg])
                    self._returned(state, msg.metadata.sequence.stream, 0.0)
                state.current = 0
                state.last = mailbox.clock()
        finally:
            state.worker, state.current = None, 0

    async def _settle(self, state: ShardKey, msg: Msg) -> None:
        mailbox = self._mailbox
        seq = msg.metadata.sequence.stream
        settlement = await self._entity(state)
        if settlement is None:
            # Its entity could not start (its factory or recovery failed, or no room under max_active): the
            # message stays here, kept from redelivery by the progress reports, and is tried
            # again after the backoff. Not a delivery: the durable rules do not count it.
            state.waiting[seq] = msg
            state.not_before = mailbox.clock() + mailbox.settings.retry_backoff.delay(state.failed_starts)
            state.failed_starts += 1
            await self._trim()  # (if the pump is full)
            return
        running = mailbox.running
        if (self.shard, state.key) in running:
            running.move_to_end((self.shard, state.key))
        headers = msg.headers or {}
        if not msg.data and WAKE in headers and REPLY not in headers:
            # A stored wake (a durable reminder's): it only starts the key, whose recovery
            # fires what is due. Not a message: nothing to deliver or to refuse.
            if not self._fenced():
                await _ack(msg)
            state.waiting.pop(seq, None)
            state.handled = max(state.handled, seq)
            self._settled(seq)
            return
        try:
            handled = await settlement.handle(msg)
        except Exception as error:
            await settlement.node_failed(msg, error)
            handled = True
        if not handled and settlement.not_recovered:
            # Its entity restarted and failed to recover before handing it over: not a delivery,
            # kept as for a failed start (the key is started again: `_entity` counts that one).
            state.waiting[seq] = msg
        elif not handled:  # the entity stopped first: given back, handled by its next one
            if not self._fenced():
                await give_back([msg])
            self._returned(state, seq, 0.0)
        elif settlement.redelivering:
            self._returned(state, seq, mailbox.settings.retry_backoff.max_delay)
        else:
            state.waiting.pop(seq, None)  # a copy delivered again meanwhile: settled already
            state.handled = max(state.handled, seq)
            self._settled(seq)

    def _returned(self, state: ShardKey, seq: int, delay: float) -> None:
        """``seq`` was given back: the key's later messages wait for it (a while: if it never
        comes back, e.g. taken out of the stream, the key goes on without it)."""
        if seq not in state.waiting:
            stretch = 1.5 + self._mailbox.settings.retry_backoff.jitter  # the backoff's jitter, and a margin
            state.returned[seq] = self._mailbox.clock() + stretch * delay + 2 * self._mailbox.lease
            self._settled(seq)

    def _settled(self, seq: int) -> None:
        self._held.pop(seq, None)
        self._room.set()

    async def _make_room(self, state: ShardKey) -> bool:
        """Reserve ``state``'s place under the host's ``max_active`` (counted over every shard of
        the type on this node), first stopping the least recently handled idle keys (nothing
        handled or waiting, their entity waiting for a message) as idle ones are; False if
        none of them is idle."""
        mailbox = self._mailbox
        limit = mailbox.host.max_active
        running = mailbox.running
        while limit is not None and len(running) >= limit:
            found = next(
                ((shard, key) for (shard, _), key in running.items() if _evictable(key)),
                None,
            )
            if found is None:
                return False
            shard, chosen = found
            pump = mailbox.pumps.get(str(shard))
            mailbox.host.evicted += 1
            if pump is None:  # (its shard stopped: its stop stops it)
                running.pop((shard, chosen.key), None)
                continue
            # Its teardown ends before the new key starts (and before it can start again).
            await asyncio.shield(pump.retire(chosen))
        running[(self.shard, state.key)] = state  # reserved before the start's await
        return True

    def retire(self, state: ShardKey) -> asyncio.Task[None]:
        """Stop ``state``'s entity (its teardown runs) and forget the key once that is done;
        messages of the key arriving meanwhile wait, and start it again after the stop: two
        entities of a key never run at once here. The task doing it."""
        if state.retiring is not None:
            return state.retiring
        mailbox = self._mailbox
        mailbox.running.pop((self.shard, state.key), None)
        supervisor = state.supervisor
        state.supervisor = state.mailbox = state.settlement = None

        async def retire() -> None:
            try:
                if supervisor is not None:
                    await supervisor.stop(mailbox.host.placements.stop_timeout)
            finally:
                state.retiring = None
                if state.waiting or state.returned:
                    self._go_on(state)
                elif self.keys.get(state.key) is state:
                    del self.keys[state.key]

        state.retiring = mailbox.spawn(retire())
        return state.retiring

    async def _entity(self, state: ShardKey) -> Settlement | None:
        """The key's running entity's settlement (its entity started if it is not alive); None
        if it could not start (its factory or its recovery failed, or no room under ``max_active``)."""
        if state.settlement is not None and state.alive():
            assert state.mailbox is not None
            if not recovery_failed(state.mailbox.actor):
                return state.settlement
        mailbox = self._mailbox
        if state.supervisor is not None:  # its supervision gave up (or a restart's recovery failed)
            mailbox.running.pop((self.shard, state.key), None)
            await state.supervisor.stop(mailbox.host.placements.stop_timeout)
            state.supervisor = state.mailbox = state.settlement = None
        if not await self._make_room(state):
            host = mailbox.host
            host.refused += 1
            mailbox.logs.log(
                logging.WARNING,
                "%s/%s not started: this node runs max_active=%s entities of the type, all "
                "handling a message; its messages wait for room",
                mailbox.entity_type,
                state.key,
                host.max_active,
            )
            return None
        if not self._holding():
            mailbox.running.pop((self.shard, state.key), None)
            return None
        start = asyncio.ensure_future(mailbox.host.start_entity(state.key))
        try:
            entity, supervisor = await asyncio.shield(start)
        except asyncio.CancelledError:
            # The pump stopped during the start: the entity, once started, is stopped too.
            mailbox.running.pop((self.shard, state.key), None)
            start.add_done_callback(self._stop_late_start)
            raise
        except Exception as error:
            self._not_started(state, error)
            return None
        # Held from now on (a stop of the key or the shard stops it), also while it recovers: a
        # recovery that fails is a failed start, not an incarnation to wait for.
        state.mailbox, state.supervisor = entity, supervisor
        failed = await failed_start(entity.actor, entity, lambda: not self._holding())
        if failed is not None:
            state.mailbox = state.supervisor = None
            if supervisor is not None:
                await supervisor.stop(mailbox.host.placements.stop_timeout)
            self._not_started(state, failed)
            return None
        state.failed_starts, state.start_error = 0, None
        state.settlement = Settlement(
            mailbox.receiver,
            mailbox.settings,
            mailbox=entity,
            name=entity_name(mailbox.entity_type, state.key),
            dead=mailbox.dead,
            dead_name=mailbox.dead_name,
            failures=mailbox.failures,
            closing=lambda: not self._holding(),
            logs=mailbox.logs,
            fenced=self._fenced,
            ends_at_failed_recovery=True,
        )
        return state.settlement

    def _not_started(self, state: ShardKey, error: BaseException) -> None:
        """The key's entity could not start (its factory or its recovery raised ``error``)."""
        mailbox = self._mailbox
        mailbox.running.pop((self.shard, state.key), None)
        state.mailbox = state.supervisor = state.settlement = None
        state.start_error = error if isinstance(error, Exception) else RuntimeError(repr(error))
        mailbox.logs.log(
            logging.WARNING, "%s/%s could not be started: %r", mailbox.entity_type, state.key, error
        )

    def _stop_late_start(self, start: asyncio.Future[tuple[Mailbox, PublicationSupervisor | None]]) -> None:
        if start.cancelled() or start.exception() is not None:
            return
        _, supervisor = start.result()
        if supervisor is not None:
            self._mailbox.spawn(supervisor.stop(self._mailbox.host.placements.stop_timeout))

    # -- time --------------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        mailbox = self._mailbox
        every = mailbox.host.tick
        progress_every, since = mailbox.lease / 2, 0.0
        while not self._stopping:
            await asyncio.sleep(every)  # a period, not a wait for state
            since += every
            if since >= progress_every:  # what waits in the pump stays ours
                since = 0.0
                for msg in list(self._held.values()):
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()
            self.check(mailbox.clock())

    def check(self, now: float) -> None:
        """Stop the keys idle for the type's ``idle_timeout`` (or whose supervision gave up);
        keep the shard's activation from being idle while it has keys; resume keys that waited
        for a message that did not come back."""
        idle_timeout = self._mailbox.host.idle_timeout
        for state in list(self.keys.values()):
            if state.worker is not None or state.retiring is not None:
                continue
            state.expire(now)
            if state.waiting:
                self._go_on(state)
            elif not state.returned and (now - state.last >= idle_timeout or not state.alive()):
                self.retire(state)  # the key stays known here until its teardown has ended
        if not self.idle():
            self.activation.last = now
        else:  # nothing to do: the host passivates the shard at its next look
            self.activation.last = min(self.activation.last, now - idle_timeout)

    # -- stopping ------------------------------------------------------------------------------------

    def active(self, key: str) -> Mailbox | None:
        """The mailbox of ``key``'s entity if it runs here."""
        state = self.keys.get(key)
        return state.mailbox if state is not None and state.alive() else None

    async def stop(self, timeout: float) -> None:
        """Stop fetching; let each key finish the message it handles (within ``timeout``; at
        once if the shard's lease is over: its fence allows no more); give back what waits; stop
        every key's entity (their teardowns run), also those being stopped already, before
        returning: the shard's lease is released only after."""
        self._stopping = True
        for task in (self._task, self._ticker):
            if task is not None and not task.done():
                task.cancel()
        workers = [state.worker for state in self.keys.values() if state.worker is not None]
        if workers:
            if not self._fenced():
                await asyncio.wait(workers, timeout=timeout)
            for worker in workers:
                worker.cancel()
        if self._moving:  # (a move cut short would leave a message both moved and stored)
            await asyncio.wait(set(self._moving.values()), timeout=timeout)
        self._stopped = True  # a move still under way now leaves the message to the next owner
        waiting = [msg for state in self.keys.values() for msg in state.waiting.values()]
        for state in self.keys.values():
            state.waiting.clear()
        self._held.clear()
        if not self._fenced():  # (past the lease, they are the next owner's: untouched)
            await give_back(waiting)
        supervisors = [state.supervisor for state in self.keys.values() if state.supervisor is not None]
        retiring = [state for state in self.keys.values() if state.retiring is not None]
        for key in self.keys:
            self._mailbox.running.pop((self.shard, key), None)
        self.keys.clear()
        stops = [self._mailbox.spawn(s.stop(timeout)) for s in supervisors]
        stops += [state.retiring for state in retiring if state.retiring is not None]
        if stops:
            await asyncio.wait(stops, timeout=2 * timeout)
        nc = self._mailbox.nc
        if self._pull is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await asyncio.wait_for(self._pull.unsubscribe(), timeout)


def _evictable(state: ShardKey) -> bool:
    """Whether the key's entity may be stopped to make room: nothing handled, waiting or given
    back, not being stopped, and its entity waiting for a message (no timer's or self-sent
    message in its mailbox, not in a handler)."""
    if state.worker is not None or state.waiting or state.returned or state.retiring is not None:
        return False
    mailbox = state.mailbox
    return mailbox is None or (mailbox.waiting is not None and not len(mailbox))


async def _ack(msg: Msg) -> None:
    """Acknowledge ``msg`` (an error of the connection is the redelivery's to mend)."""
    with contextlib.suppress(nats.errors.Error):
        await msg.ack()
