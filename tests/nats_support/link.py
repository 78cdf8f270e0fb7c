"""A TCP relay between NATS clients and a server that can delay what the clients send, within
what the NATS protocol allows: the server answers a PING after it has processed every command
sent before that PING, and promises nothing about a command that no PING follows yet.

While `SlowLink.hold` is on, each client command waits in the relay until the client sends a
PING, then goes to the server together with it (in order); `release` sends what waits and stops
holding. A client that returns from ``flush()`` with a command still waiting has relied on
something the protocol does not promise: on a busy machine the server may read that command
late, after commands of other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class SlowLink:
    """Listens on a free loopback port (`url`) and relays each connection to ``server_port``."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.port = 0
        self.holding = False
        self._links: list[_Relay] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The relay's ``nats://`` URL."""
        return f"nats://127.0.0.1:{self.port}"

    def hold(self) -> None:
        """From now on, each client command waits for the client's next PING."""
        self.holding = True

    def release(self) -> None:
        """Send every waiting command and stop holding."""
        self.holding = False
        for relay in self._links:
            relay.release()

    def sever(self) -> None:
        """As if the clients' machine died: stop listening (no reconnection gets through) and
        close every relayed connection, so the server drops their subscriptions."""
        if self._server is not None:
            self._server.close()
        for relay in list(self._links):
            relay.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.server_port)
        relay = _Relay(self, writer, upstream_writer)
        self._links.append(relay)
        try:
            await asyncio.gather(relay.upstream(reader), _pipe(upstream_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.remove(relay)
            relay.close()
            for end in (writer, upstream_writer):
                with contextlib.suppress(ConnectionError):
                    await end.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SlowLink]:
        """Listen while in the block; on exit, close the listener and every relayed connection."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for relay in list(self._links):
                relay.close()
            await self._server.wait_closed()


class _Relay:
    """One client connection: its commands, one by one, to the server."""

    def __init__(
        self, link: SlowLink, writer: asyncio.StreamWriter, upstream_writer: asyncio.StreamWriter
    ) -> None:
        self.link = link
        self.writer = writer
        self.upstream_writer = upstream_writer
        self.waiting: list[bytes] = []

    def close(self) -> None:
        self.writer.close()
        self.upstream_writer.close()

    def release(self) -> None:
        self.upstream_writer.write(b"".join(self.waiting))
        self.waiting.clear()

    async def upstream(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            command = line
            verb = line.split(b" ", 1)[0].upper()
            if verb in (b"PUB", b"HPUB"):  # the last field is the size of what follows the line
                size = int(line.split()[-1])
                command += await reader.readexactly(size + 2)
            if not self.link.holding:
                self.upstream_writer.write(command)
            elif verb.strip() == b"PING":
                self.waiting.append(command)
                self.release()
            else:
                self.waiting.append(command)
            await self.upstream_writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def publish_and_ping(port: int, subject: str, payload: bytes) -> None:
    """Publish ``payload`` to ``subject`` on a connection of its own, and return at the PONG of a
    PING sent after it: the server has routed the message (to the subscriptions it had then)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        info = await reader.readline()
        assert info.startswith(b"INFO "), info
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        writer.write(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
        await writer.drain()
        while (line := await reader.readline()) != b"PONG\r\n":
            assert line, "the server closed the connection"
            assert not line.startswith(b"-ERR"), line
    finally:
        writer.close()
        await writer.wait_closed()
