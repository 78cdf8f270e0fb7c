"""The fencing token of an entity's activation, for the entity's own code: `fencing_token`.

Each activation holds its key by a lease whose claim revision (the revision of the key-value
create that started it, ``Lease.claim``) already fences every message the host delivers. The
same number, given to the entity, lets it fence its own writes to a store outside NATS: the
store keeps the largest token it has seen for the key and refuses a write that carries a smaller
one (Kleppmann's fencing token; Chubby's sequencer).

The host sets the token in the context of the task that starts the activation, so the
activation's supervisor, the actor (every incarnation of it: a restart keeps the lease) and the
tasks they start inherit it; nothing else sees it.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["fencing_token", "set_fencing_token"]

_TOKEN: ContextVar[int | None] = ContextVar("actorio_entity_fencing_token", default=None)


def fencing_token() -> int:
    """The fencing token of the entity activation whose code calls it: the claim revision of the
    lease by which it holds its key (a positive int).

    The contract:

    - it is fixed for the activation's life: renewing the lease does not change it (a renewal
      writes a new revision of the entry, but the token is the revision of the claim);
    - a later activation of the same key, on this node or any other, has a larger token, as long
      as the type's key-value bucket is not deleted (the token is a sequence number of that
      bucket's stream, which only grows);
    - two activations of a key on different nodes, or one after the other's lease, never have
      the same token. For a durable entity type the lease is its shard's: keys stopped and
      started again inside one activation of their shard keep its token (they never overlap).

    So a store that refuses a write whose token is smaller than the largest it has seen for the
    key refuses the writes of an activation that has been superseded, even one whose process
    was paused past its lease (see docs/entities.md, "A fencing token for the entity"). Call it
    from the entity's handlers, ``mainloop_setup``, ``mainloop_teardown`` or a task they start.

    Raises ``LookupError`` when called from code that is not an entity activation's.
    """
    token = _TOKEN.get()
    if token is None:
        raise LookupError("fencing_token() is called by an entity, from its handlers or the tasks they start")
    return token


def set_fencing_token(token: int) -> None:
    """Set the token for the current task's context (the host does so before it starts an
    activation)."""
    _TOKEN.set(token)
