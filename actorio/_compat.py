"""actorio 0.1.4's names that the current API renamed or replaced, kept so that code written for
it still runs: each says, with a ``DeprecationWarning``, which name to use now.

- `ActorReference`: `ActorRef`, the reference to an actor (the same class).
- `wait_for`: ``asyncio.wait_for`` (with ``shield=True``, of ``asyncio.shield(awaitable)``).
- `MessageQueue`: the original's inbox queue, which refuses a message without a sender.
- `warn_moved`: the warning of the original's public modules (``actorio.actor``,
  ``actorio.messaging``, ``actorio.reference``, ``actorio.errors``) when one is imported.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable
from typing import Any, TypeVar

from ._exceptions import ActorioException
from ._ref import ActorRef

__all__ = ["ActorReference", "MessageQueue", "wait_for", "warn_moved"]

T = TypeVar("T")

ActorReference = ActorRef
"""actorio 0.1.4's name of `ActorRef`."""


def warn_moved(module: str, names: str) -> None:
    """Warn that ``module``, one of actorio 0.1.4's modules, is kept for compatibility only."""
    warnings.warn(
        f"{module} is actorio 0.1.4's module: import {names} from actorio",
        DeprecationWarning,
        stacklevel=3,
    )


async def wait_for(
    awaitable: Awaitable[T], timeout: float | None, *, loop: None = None, shield: bool = False
) -> T:
    """actorio 0.1.4's ``wait_for``: ``asyncio.wait_for(awaitable, timeout)``, or of
    ``asyncio.shield(awaitable)`` if ``shield`` (the awaitable goes on when the wait times out).

    ``loop`` is accepted only as ``None``: asyncio no longer takes a loop (``TypeError``)."""
    if loop is not None:
        raise TypeError("wait_for() no longer takes a loop: asyncio removed the argument")
    return await asyncio.wait_for(asyncio.shield(awaitable) if shield else awaitable, timeout)


class MessageQueue(asyncio.Queue[Any]):
    """actorio 0.1.4's inbox queue: an ``asyncio.Queue`` that refuses, with `ActorioException`,
    a message without a sender (the original's rule; today's mailboxes take such messages, whose
    replies are dead letters). Making one warns (``DeprecationWarning``) to use ``asyncio.Queue``."""

    def __init__(self, maxsize: int = 0) -> None:
        warnings.warn(
            "MessageQueue is actorio 0.1.4's name of an inbox queue: use an asyncio.Queue "
            "(actors' mailboxes are private)",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(maxsize)

    async def put(self, item: Any) -> None:
        """Queue ``item``, waiting for room; `ActorioException` if it has no sender."""
        _check_sender(item)
        await super().put(item)

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` now; `ActorioException` if it has no sender."""
        _check_sender(item)
        super().put_nowait(item)


def _check_sender(message: Any) -> None:
    if not getattr(message, "sender", None):
        raise ActorioException("Message should have a sender")
