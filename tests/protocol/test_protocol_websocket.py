"""examples/websocket_json.py, served in-process by aiohttp's TestServer, driven by a real websocket
client: valid frames are handled and answered, invalid ones get an error frame, and the connection
and the actor stay up."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import websocket_json  # noqa: E402

BOUND = 10.0  # every wait in these tests is bounded by this many seconds
ACCEPTED = ["echo", "add", "close"]

WebSocket = aiohttp.ClientWebSocketResponse[bool]


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    async with TestServer(websocket_json.make_app(), port=0) as server:
        yield str(server.make_url("/"))


@pytest_asyncio.fixture
async def websocket(url: str) -> AsyncIterator[WebSocket]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=BOUND)) as connection,
    ):
        yield connection


async def receive_json(websocket: WebSocket) -> dict[str, Any]:
    frame = await websocket.receive(timeout=BOUND)
    assert frame.type is aiohttp.WSMsgType.TEXT, frame
    received: dict[str, Any] = json.loads(frame.data)
    return received


async def request(websocket: WebSocket, frame: str | dict[str, Any]) -> dict[str, Any]:
    await websocket.send_str(frame if isinstance(frame, str) else json.dumps(frame))
    return await receive_json(websocket)


async def assert_closed_by_server(websocket: WebSocket) -> None:
    frame = await websocket.receive(timeout=BOUND)
    assert frame.type is aiohttp.WSMsgType.CLOSE, frame
    assert websocket.closed
    assert websocket.close_code == aiohttp.WSCloseCode.OK


@pytest.mark.asyncio
async def test_valid_frames_are_handled_and_answered(websocket: WebSocket) -> None:
    echoed = await request(websocket, {"type": "echo", "data": {"text": "ünï ✓"}, "id": 1})
    assert echoed["type"] == "echoed"
    assert echoed["reply_to"] == 1
    assert echoed["data"]["text"] == "ünï ✓"
    assert set(echoed["data"]) == {"text", "creation_date"}
    first = await request(websocket, {"type": "add", "data": {"value": 2}, "id": "a"})
    assert (first["type"], first["data"]["value"], first["reply_to"]) == ("total", 2, "a")
    second = await request(websocket, {"type": "add", "data": {"value": 3}})  # no id: no reply_to
    assert (second["data"]["value"], "reply_to" in second) == (5, False)
    await websocket.send_str('{"type": "close"}')
    await assert_closed_by_server(websocket)


INVALID_FRAMES = [
    pytest.param(
        '{"type": "shout", "data": {"text": "x"}, "id": 9}', "type", "unknown_type", id="unknown type"
    ),
    pytest.param('{"data": {"text": "x"}}', "type", "missing_type", id="missing type"),
    pytest.param('{"type": "echo", "data": {}, "id": 9}', "data.text", "missing", id="missing field"),
    pytest.param(
        '{"type": "echo", "data": {"text": "x", "loud": true}, "id": 9}',
        "data.loud",
        "extra_forbidden",
        id="extra field",
    ),
    pytest.param(
        '{"type": "add", "data": {"value": "two"}, "id": 9}', "data.value", "int_parsing", id="wrong type"
    ),
    pytest.param('{"type": "echo", "data": {', "", "invalid_json", id="malformed JSON"),
    pytest.param("[1, 2, 3]", "", "not_an_object", id="non-object JSON"),
    pytest.param('"echo"', "", "not_an_object", id="JSON string"),
]


@pytest.mark.parametrize(("frame", "path", "kind"), INVALID_FRAMES)
@pytest.mark.asyncio
async def test_an_invalid_frame_gets_an_error_frame_and_the_session_carries_on(
    websocket: WebSocket, frame: str, path: str, kind: str
) -> None:
    # State first, so that carrying on can be told from a new session.
    assert (await request(websocket, {"type": "add", "data": {"value": 40}}))["data"]["value"] == 40

    error = await request(websocket, frame)
    assert error["type"] == "error"
    problems = error["data"]["errors"]
    assert [(problem["path"], problem["kind"]) for problem in problems] == [(path, kind)]
    assert error["data"]["accepted"] == ACCEPTED
    message = error["data"]["message"]
    assert f"{path or 'payload'}: {problems[0]['message']}" in message
    assert message.endswith("(accepted types: echo, add, close)")
    assert error.get("reply_to") == (9 if '"id": 9' in frame else None)

    # The connection and the actor are still up: the same session answers, its state intact.
    total = await request(websocket, {"type": "add", "data": {"value": 2}, "id": 10})
    assert (total["type"], total["data"]["value"], total["reply_to"]) == ("total", 42, 10)


@pytest.mark.asyncio
async def test_every_invalid_frame_in_a_row_then_a_valid_one(websocket: WebSocket) -> None:
    for param in INVALID_FRAMES:
        frame, _, kind = param.values
        error = await request(websocket, str(frame))
        assert (error["type"], error["data"]["errors"][0]["kind"]) == ("error", kind)
    echoed = await request(websocket, {"type": "echo", "data": {"text": "still here"}, "id": 1})
    assert (echoed["type"], echoed["data"]["text"]) == ("echoed", "still here")


@pytest.mark.asyncio
async def test_sessions_are_independent_and_a_binary_frame_ends_one(url: str) -> None:
    timeout = aiohttp.ClientWSTimeout(ws_close=BOUND)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, timeout=timeout) as first,
        session.ws_connect(url, timeout=timeout) as second,
    ):
        assert (await request(first, {"type": "add", "data": {"value": 1}}))["data"]["value"] == 1
        assert (await request(second, {"type": "add", "data": {"value": 10}}))["data"]["value"] == 10
        await first.send_bytes(b'{"type": "add", "data": {"value": 1}}')
        await assert_closed_by_server(first)
        assert (await request(second, {"type": "add", "data": {"value": 10}}))["data"]["value"] == 20
