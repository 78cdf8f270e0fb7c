"""The snapshot endpoint against hostile clients: bad requests, clients that never take their
answer, more connections than it keeps, and floods of requests (each would build the tree on
the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from actorio import Actor, Message, handles
from actorio.lowlevel import actor_of, counting_wrapper, handler_wrappers
from actorio.telemetry import _endpoint, count_handlers, stop_counting_handlers
from actorio.telemetry._endpoint import MAX_CONNECTIONS, SnapshotServer, serve_snapshots
from tests.nats_support.processes import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Ping(Message):
    pass


class Root(Actor[Ping]):
    @handles(Ping)
    async def ping(self, message: Ping) -> None:
        pass


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[SnapshotServer]:
    async with Root(identifier="root") as ref:
        root = actor_of(ref)
        assert root is not None
        server = await serve_snapshots(root)
        try:
            yield server
        finally:
            await server.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Return once ``condition()`` holds, polled, within ``timeout`` seconds (else fail)."""

    async def check() -> bool:
        return condition()

    await wait_until(check, timeout)


async def request(server: SnapshotServer, raw: bytes) -> bytes:
    """What the endpoint answers ``raw`` with, whole (it closes the connection after)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_it_answers_get_snapshot_and_refuses_the_rest(endpoint: SnapshotServer) -> None:
    answer = await request(endpoint, b"GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert json.loads(body)["tree"]["identifier"] == "root"
    assert (await request(endpoint, b"GET /other HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.0 404")
    assert (await request(endpoint, b"POST /snapshot HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.0 400")
    assert (await request(endpoint, b"G" * 20_000 + b"\r\n\r\n")).startswith(b"HTTP/1.0 400")


async def test_connections_beyond_the_limit_are_closed_at_once(endpoint: SnapshotServer) -> None:
    """Connections that send nothing (a slowloris) hold at most MAX_CONNECTIONS: one more is
    closed as soon as it is accepted (it used to be kept, until the process ran out of file
    descriptors and asyncio logged an error a connection); once they go, requests are served."""
    idle = [await asyncio.open_connection(endpoint.host, endpoint.port) for _ in range(MAX_CONNECTIONS)]
    try:
        await until(lambda: len(endpoint._connections) == MAX_CONNECTIONS)
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        try:
            with contextlib.suppress(ConnectionResetError):  # (aborted: the same as closed)
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, unanswered
        finally:
            writer.close()
    finally:
        for _, writer in idle:
            writer.close()
    await until(lambda: not endpoint._connections)
    answer = await request(endpoint, b"GET /snapshot HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK")


async def test_an_answer_the_client_does_not_take_is_dropped(
    endpoint: SnapshotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that asks and never reads kept its connection, its task and its copy of the
    tree (megabytes for a large one) for as long as it liked, close() included."""
    monkeypatch.setattr(_endpoint, "WRITE_TIMEOUT", 0.5)
    monkeypatch.setattr(_endpoint._Answers, "snapshot", lambda self: b"x" * (64 << 20))
    _, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    try:
        writer.write(b"GET /snapshot HTTP/1.0\r\n\r\n")
        await writer.drain()
        await until(lambda: bool(endpoint._connections))
        await until(lambda: not endpoint._connections, 20)  # WRITE_TIMEOUT: then it is dropped
    finally:
        writer.close()


async def test_close_drops_the_connections_still_open(
    endpoint: SnapshotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_endpoint, "READ_TIMEOUT", 60.0)  # they would not go by themselves
    idle = [await asyncio.open_connection(endpoint.host, endpoint.port) for _ in range(3)]
    await until(lambda: len(endpoint._connections) == 3)
    await asyncio.wait_for(endpoint.close(), 5)  # it used to wait for them, as long as they stayed
    assert not endpoint._connections
    for reader, writer in idle:
        with contextlib.suppress(ConnectionResetError):  # (aborted: the same as closed)
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_slow_readers_of_a_large_answer_get_it_whole_and_nothing_is_logged(
    endpoint: SnapshotServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A transport that CPython closes once its last bytes are sent raises AttributeError when
    aborted: dropping every connection after its answer logged a traceback for honest clients
    (a remote top reading a large tree)."""
    body = b"x" * 3_000_000
    monkeypatch.setattr(_endpoint._Answers, "snapshot", lambda self: ("200 OK", body))
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))

    def slow_reader() -> int:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect((endpoint.host, endpoint.port))
            client.sendall(b"GET /snapshot HTTP/1.0\r\n\r\n")
            received = 0
            while chunk := client.recv(65536):
                received += len(chunk)
                time.sleep(0.0005)  # a slow reader (a thread of its own: the loop goes on)
            return received

    try:
        for _ in range(6):
            received = await asyncio.to_thread(slow_reader)
            assert received > len(body)
        await until(lambda: not endpoint._connections)
        for _ in range(10):  # (what the transports schedule as they close runs meanwhile)
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert errors == []
    assert not [r for r in caplog.records if r.name == "asyncio"]


async def test_a_flood_of_requests_builds_the_tree_once_a_while(
    endpoint: SnapshotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request built the whole tree on the event loop: four clients asking without pause
    stalled every actor of the process. Answers are now shared for FRESH_FOR seconds."""
    built: list[int] = []
    document = _endpoint.snapshot_document

    def counted(root: Actor[Any]) -> dict[str, Any]:
        built.append(1)
        return document(root)

    monkeypatch.setattr(_endpoint, "snapshot_document", counted)
    monkeypatch.setattr(_endpoint, "FRESH_FOR", 60.0)
    answers = await asyncio.gather(*(request(endpoint, b"GET /snapshot HTTP/1.0\r\n\r\n") for _ in range(12)))
    assert all(answer.startswith(b"HTTP/1.0 200 OK") for answer in answers)
    assert len({answer for answer in answers}) == 1
    assert len(built) == 1


async def test_handler_counting_goes_off_with_the_last_endpoint_it_turned_on() -> None:
    async with Root(identifier="root") as ref:
        root = actor_of(ref)
        assert root is not None
        assert counting_wrapper not in handler_wrappers()
        first, second = await serve_snapshots(root), await serve_snapshots(root)
        assert counting_wrapper in handler_wrappers()
        await first.close()
        await first.close()  # twice: counted once
        assert counting_wrapper in handler_wrappers()  # the second still serves counts
        await second.close()
        assert counting_wrapper not in handler_wrappers()
        count_handlers()  # the program's own: an endpoint leaves it on
        try:
            await (await serve_snapshots(root)).close()
            assert counting_wrapper in handler_wrappers()
            endpoint = await serve_snapshots(root)
            stop_counting_handlers()  # the program's off, an endpoint's on: on until it closes
            assert counting_wrapper in handler_wrappers()
            count_handlers()  # on again, while the endpoint is open: the endpoint leaves it on
            await endpoint.close()
            assert counting_wrapper in handler_wrappers()
        finally:
            stop_counting_handlers()
        assert counting_wrapper not in handler_wrappers()


async def test_a_tree_that_cannot_be_built_is_a_500_logged_within_a_limit(
    endpoint: SnapshotServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree nested deeper than the stack allows (a chain of 700 supervised actors) raises
    RecursionError while it is built: each request got its connection dropped, and a traceback
    logged, unbounded. Now a 500, one log line (within a limit), and no new build sooner."""
    builds: list[Actor[Any]] = []

    def too_deep(root: Actor[Any]) -> dict[str, Any]:
        builds.append(root)
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(_endpoint, "snapshot_document", too_deep)
    with caplog.at_level(logging.ERROR, logger="actorio.telemetry"):
        answers = [await request(endpoint, b"GET /snapshot HTTP/1.0\r\n\r\n") for _ in range(3)]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.0 500 "), answer[:200]
        assert b"the snapshot could not be built (RecursionError)" in answer
    assert 1 <= len(builds) <= 3  # once per FRESH_FOR at most
    assert len([r for r in caplog.records if "could not be built" in r.getMessage()]) == len(builds)
