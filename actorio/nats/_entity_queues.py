"""`TellQueues`: the ``tell_nowait`` calls of a node's entity references, queued per entity type.

Owns the order of what a node tells entities without waiting: each type has its own queue, sent
in order by a task of its own, started by the type's first queued call and ended once its queue
is empty (the queue is dropped with it). A ``tell`` or an ask of a type goes after what is
queued for that type. A type whose sends wait (nobody hosts it, its bucket cannot be read) holds
up only its own tells, not the other types' (a queue for the whole node did).

The memory held is what is queued (as with one queue), plus a queue and a task per type that
has tells queued now.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..lowlevel import LogLimit

__all__ = ["Send", "TellQueues"]

_logger = logging.getLogger("actorio.nats")

Send = Callable[[], Awaitable[Any]]


class _Told:
    """A ``tell`` queued behind ``tell_nowait`` calls: its send, and the future its caller awaits
    (set when it is sent, failed with its error). A ``tell_nowait`` is queued as its bare send: no
    object of its own (one more per message made the collector run more often)."""

    __slots__ = ("send", "done")

    def __init__(self, send: Send, done: asyncio.Future[None]) -> None:
        self.send = send
        self.done = done

    async def __call__(self) -> None:
        try:
            await self.send()
        except asyncio.CancelledError:
            if not _cancelling() and not self.done.done():  # the send's own (see `_flush`)
                self.done.cancel()
            raise  # the queue's task's (the node closes): `_ended` fails it
        except Exception as error:
            if not self.done.done():
                self.done.set_exception(error)
        else:
            if not self.done.done():
                self.done.set_result(None)


class TellQueues:
    """The queues of a node's entity tells, one per entity type (see the module)."""

    def __init__(self, spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], node_id: str) -> None:
        self._spawn = spawn
        self._node_id = node_id
        self._queues: dict[str, collections.deque[Send]] = {}
        self._failures = LogLimit(_logger)

    def __contains__(self, entity_type: str) -> bool:
        """Whether tells to ``entity_type`` are queued (being sent, or waiting)."""
        return entity_type in self._queues

    def tell_nowait(self, entity_type: str, send: Send) -> None:
        """Queue ``send`` behind what is queued for ``entity_type``; its failure is logged
        (within a limit)."""
        queue = self._queues.get(entity_type)
        if queue is not None:
            queue.append(send)
            return
        # Queued before the task starts: an eager task factory runs it at once.
        queue = self._queues[entity_type] = collections.deque((send,))
        task = self._spawn(self._flush(entity_type, queue))
        task.add_done_callback(functools.partial(self._ended, entity_type, queue))

    async def send(self, entity_type: str, send: Send) -> None:
        """Run ``send`` after what is queued for ``entity_type`` (at once if nothing is); its
        error is raised. A caller that stops waiting does not take it out of the queue."""
        if entity_type in self._queues:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.tell_nowait(entity_type, _Told(send, done))
            await done
        else:
            await send()

    async def _flush(self, entity_type: str, queue: collections.deque[Send]) -> None:
        """Send what is queued for ``entity_type``, in order, until the queue is empty; then drop
        the queue (no await between: a call finding it queues behind what is being sent). Each
        send leaves the queue once sent: a cancelled task leaves it there, for `_ended`."""
        while queue:
            try:
                await queue[0]()
            except asyncio.CancelledError as error:
                if _cancelling():  # the node closes: what is left is `_ended`'s
                    raise
                self._failures.log(logging.ERROR, "an entity's tell_nowait could not be sent: %r", error)
            except Exception as error:
                self._failures.log(logging.ERROR, "an entity's tell_nowait could not be sent: %r", error)
            queue.popleft()
        if self._queues.get(entity_type) is queue:
            del self._queues[entity_type]

    def _ended(self, entity_type: str, queue: collections.deque[Send], task: asyncio.Task[Any]) -> None:
        """The task of ``queue`` is done: if it did not send it all (cancelled when the node
        closed, even before it started), what is left is not sent. It is counted in a warning,
        and the tells awaiting it fail with `ConnectionError`; the queue is dropped."""
        if self._queues.get(entity_type) is queue:
            del self._queues[entity_type]
        left = list(queue)
        queue.clear()
        if left:
            lost = ConnectionError(f"the node {self._node_id} closed before the tell was sent")
            for told in left:
                if isinstance(told, _Told) and not told.done.done():
                    told.done.set_exception(lost)
            _logger.warning(
                "%d tell(s) to entities of type %r not sent: the node closed", len(left), entity_type
            )


def _cancelling() -> bool:
    """Whether the current task is being cancelled: a send's `CancelledError` may be another's
    (a future it awaited, cancelled by someone else). Python 3.10 cannot tell: always."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is None or bool(cancelling())
