"""The snapshot endpoint: a small HTTP server, on a port the user opens, that answers
``GET /snapshot`` with the tree of actors under a root as JSON (what ``python -m actorio top``
reads).

Whatever arrives is hostile: a request line and headers of at most `MAX_REQUEST` bytes, read
within `READ_TIMEOUT` seconds; anything but ``GET /snapshot`` gets a 404 or 400 and the
connection is closed. An answer not taken by the client within `WRITE_TIMEOUT` seconds is
dropped, with its connection; at most `MAX_CONNECTIONS` are open at once (those beyond are
closed at once); the tree is built at most once every `FRESH_FOR` seconds, whatever the number
of requests (they share it). It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
from typing import Any

from actorio import Actor, dead_letters
from actorio.lowlevel import LogLimit, snapshot

from ._counting import hold, release

__all__ = [
    "FRESH_FOR",
    "MAX_CONNECTIONS",
    "MAX_REQUEST",
    "READ_TIMEOUT",
    "WRITE_TIMEOUT",
    "SnapshotServer",
    "serve_snapshots",
    "snapshot_document",
]

MAX_REQUEST = 8192
"""The most bytes read of a request (its line and headers)."""

READ_TIMEOUT = 5.0
"""Seconds a client has to send its request."""

WRITE_TIMEOUT = 10.0
"""Seconds a client has to take the answer (a large tree is megabytes): then it is dropped."""

MAX_CONNECTIONS = 16
"""Connections open at once; one beyond is closed as soon as it is accepted."""

FRESH_FOR = 0.25
"""Seconds an answer is reused for: building the tree is the event loop's work, so a flood of
requests costs at most one build this often."""

_failures = LogLimit(logging.getLogger("actorio.telemetry"))


def snapshot_document(root: Actor[Any]) -> dict[str, Any]:
    """What ``GET /snapshot`` answers: the process (``pid``, ``host``), the time (Unix seconds),
    the dead letters recorded so far, and the tree from ``root`` (`snapshot`)."""
    return {
        "process": {"pid": os.getpid(), "host": socket.gethostname()},
        "time": time.time(),
        "dead_letters": dead_letters.total,
        "tree": snapshot(root),
    }


class SnapshotServer:
    """A running snapshot endpoint (see `serve_snapshots`)."""

    def __init__(self, server: asyncio.Server, root: Actor[Any], connections: _Connections) -> None:
        self._server = server
        self._connections = connections
        self.root = root
        sockets = server.sockets
        self.host, self.port = sockets[0].getsockname()[:2]

    @property
    def url(self) -> str:
        """Where ``python -m actorio top`` reads it: ``http://host:port/snapshot``."""
        return f"http://{self.host}:{self.port}/snapshot"

    async def close(self) -> None:
        """Stop listening, drop the connections still open (and any accepted meanwhile), and
        return once their handlers have ended. Handler counting goes off with the last endpoint
        closed, unless the program asked for it (`count_handlers`)."""
        if not self._connections.closing:
            release()
        self._connections.closing = True
        self._server.close()
        handlers = list(self._connections.open)
        for handler in handlers:
            handler.cancel()  # (its finally drops its connection)
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> SnapshotServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Connections:
    """The connections being answered, by their handler's task; none more once ``closing``."""

    def __init__(self) -> None:
        self.open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self.closing = False

    def __len__(self) -> int:
        return len(self.open)


async def serve_snapshots(root: Actor[Any], host: str = "127.0.0.1", port: int = 0) -> SnapshotServer:
    """Serve the tree under ``root`` at ``http://host:port/snapshot`` (``port`` 0: any free one;
    see `SnapshotServer.url`) until `SnapshotServer.close`. Turns handler counting on
    (`count_handlers`), so that the snapshot has handled counts and handler times, until the last
    endpoint is closed (unless the program asked for counting: `count_handlers`)."""
    connections = _Connections()
    answers = _Answers(root)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is None or connections.closing or len(connections) >= MAX_CONNECTIONS:
            _drop(writer)
            return
        connections.open[handler] = writer
        closed = False
        try:
            status, body = await _respond(reader, answers)
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode())
            writer.write(body)  # (the shared body, not a copy a connection)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)
            closed = True
        except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):
            pass  # (cancelled: by close(); this task is the connection's own, nobody awaits it)
        finally:
            del connections.open[handler]
            if not closed:
                _drop(writer)  # (what the client did not take is dropped)

    server = await asyncio.start_server(answer, host, port, limit=MAX_REQUEST)
    hold()  # (after the one await that can fail: a port taken turns nothing on)
    return SnapshotServer(server, root, connections)


def _drop(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s connection at once, dropping what it has not sent. (A transport that
    CPython closed meanwhile, its last bytes sent, raises AttributeError on abort: it is gone.)"""
    with contextlib.suppress(AttributeError):
        writer.transport.abort()


class _Answers:
    """The body of ``GET /snapshot``, built again once it is `FRESH_FOR` seconds old."""

    def __init__(self, root: Actor[Any]) -> None:
        self.root = root
        self._answer = ("200 OK", b"")
        self._built = -math.inf

    def snapshot(self) -> tuple[str, bytes]:
        """The status and body; a tree that cannot be built (nested deeper than the stack allows)
        is a 500, logged within a limit, and built again no sooner than a good one would be."""
        now = time.monotonic()
        if now - self._built >= FRESH_FOR:
            try:
                self._answer = ("200 OK", json.dumps(snapshot_document(self.root)).encode())
            except Exception as error:
                _failures.log(logging.ERROR, "the snapshot could not be built: %s", repr(error)[:300])
                why = {"error": f"the snapshot could not be built ({type(error).__name__})"}
                self._answer = ("500 Internal Server Error", json.dumps(why).encode())
            self._built = now
        return self._answer


async def _respond(reader: asyncio.StreamReader, answers: _Answers) -> tuple[str, bytes]:
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return "400 Bad Request", b'{"error": "bad request"}'
    line = request.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3 or line[0] != b"GET":
        return "400 Bad Request", b'{"error": "bad request"}'
    if line[1] != b"/snapshot":
        return "404 Not Found", b'{"error": "not found: GET /snapshot"}'
    return answers.snapshot()
