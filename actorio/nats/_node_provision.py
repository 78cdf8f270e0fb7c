"""`NodeProvision`: what `Node` offers an operator (a base of `Node`): ``node.provision`` and
``node.provision_entities`` make the JetStream streams and buckets of durable names and entity
types beforehand, so that the processes that use them need no right to make streams (see
``_stream_setup``, docs/nats-security.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._addresses import check_name
from ._durable import Durable

if TYPE_CHECKING:
    from ._durable import Streams
    from ._entities import Entities

__all__ = ["NodeProvision"]


class NodeProvision:
    """`Node`'s methods for operators (a base of `Node`): ``provision``, ``provision_entities``."""

    if TYPE_CHECKING:  # what Node has
        _closed: bool
        _streams: Streams

        @property
        def entities(self) -> Entities: ...

        def _subject_of(self, name: str) -> str: ...

    async def provision(self, name: str, durable: Durable | bool = True) -> None:
        """Make the JetStream streams of the durable name ``name`` (its mailbox and its dead-letter
        stream, with ``durable``'s settings: ``True`` for `Durable`'s defaults), without publishing
        it; a stream of that name is kept as it is if its settings fit, and updated otherwise.

        A process that then publishes ``name`` with the same settings (or with ``durable=True``
        if provisioned with the defaults) finds the streams as it would make them, and neither
        makes nor updates them: it needs no right to make or update streams, which is in effect
        the right to purge and delete every stream of the account (docs/nats-security.md). Run
        it connected as a user that may make streams (an operator's), once per durable name
        and whenever its settings change. The durable consumer is not made here: each process
        that publishes the name makes (or updates) it.

        Raises ``ValueError`` for an invalid name or settings, or for a stream of that name with
        other settings that could not be updated; ``RuntimeError`` on a server without
        JetStream, or for a closed node.
        """
        check_name(name)
        if self._closed:
            raise RuntimeError("the node is closed")
        settings = Durable() if durable is True else durable
        if not isinstance(settings, Durable):
            raise ValueError(f"durable must be True or a Durable, not {durable!r}")
        await self._streams.provision(name, self._subject_of(name), settings)

    async def provision_entities(
        self,
        name: str,
        *,
        lease: float = 10.0,
        durable: Durable | bool = False,
        persistent: bool = False,
    ) -> None:
        """Make the JetStream streams and buckets of the entity type ``name`` without hosting it:
        its key-value bucket of placements (its TTL ``lease``, as every host of the type uses);
        ``durable`` (``True`` or a `Durable`), its mailbox stream and dead-letter stream;
        ``persistent``, the index bucket of its durable reminders. What exists is kept: a bucket
        as it is, a stream as `Node.provision` keeps one.

        Hosts and senders of the type then find them, and need no right to make streams, which
        is in effect the right to purge and delete every stream of the account
        (docs/nats-security.md). Run it connected as a user that may make streams (an
        operator's), once per type, with the ``lease``, ``durable`` settings and persistence
        the hosts use.

        Raises ``ValueError`` for an invalid name or settings, a lease other than the bucket's,
        a plain type already durable, or a stream with other settings that could not be updated;
        ``RuntimeError`` for a closed node, or on a server without JetStream.
        """
        if self._closed:
            raise RuntimeError("the node is closed")
        if not isinstance(cast(object, durable), (bool, Durable)):  # (durable=5, say)
            raise ValueError(f"durable must be a bool or a Durable, not {durable!r}")
        settings = Durable() if durable is True else (durable or None)
        await self.entities.provision(name, lease=lease, durable=settings, persistent=persistent)
