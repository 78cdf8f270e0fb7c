"""The node's NATS connection: syncing with the server.

Owns `synced`: return once the server has processed every command sent so far (a SUB included).
"""

from __future__ import annotations

from nats.aio.client import Client

__all__ = ["synced"]


async def synced(nc: Client) -> None:
    """Return once the server has processed every command this client sent so far.

    ``nc.flush()`` alone does not: nats-py 2.16 writes the flush's PING straight to the socket,
    while a SUB just made still waits in its write buffer for the client's flusher task, so the
    server may answer the PING (and a message from another connection may find no subscriber)
    before it reads the SUB. The flusher writes that buffer before the first PONG is read, so the
    second flush's PING follows the SUB, and its PONG comes once the server has the subscription.
    """
    await nc.flush()
    await nc.flush()
