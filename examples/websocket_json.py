"""A typed JSON websocket server: one actor per client, and each text frame a message of its protocol.

The websocket echo example, typed. A `Session` actor serves one connection, fed by an input task on
``websocket.receive``. Each text frame is one JSON payload in actorio's wire form,
``{"type": "add", "data": {"value": 2}, "id": 1}``: the actor's protocol validates it into a typed
message, which the actor's ``@handles`` method handles. The reply goes back in the same wire form,
with the request's ``id`` as its ``reply_to``: ``{"type": "total", "data": {"value": 2, ...},
"reply_to": 1}``.

An invalid frame (unknown type, missing, extra or invalid field, malformed JSON, not a JSON object)
gets an error frame back, ``{"type": "error", "data": {"message": ..., "errors": [{"path": ...,
"message": ..., "kind": ...}], "accepted": ["echo", "add", "close"]}}``, and the connection and the
actor carry on. A ``close`` message, or a frame that is not text, ends the actor, which closes its
connection. ``python -m actorio schema websocket_json:Session --path examples`` prints what a client
may send.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from actorio import Actor, EndMainLoop, InvalidPayload, Message, handles


class Echoed(Message):
    """The reply to `Echo`."""

    wire_name: ClassVar[str] = "echoed"
    text: str


class Echo(Message[Echoed]):
    """Asks for ``text`` back."""

    wire_name: ClassVar[str] = "echo"
    text: str


class Total(Message):
    """The reply to `Add`: the session's running total."""

    wire_name: ClassVar[str] = "total"
    value: int


class Add(Message[Total]):
    """Adds ``value`` to the session's running total."""

    wire_name: ClassVar[str] = "add"
    value: int


class Close(Message):
    """Ends the session: the server closes the connection."""

    wire_name: ClassVar[str] = "close"


class Session(Actor[Echo | Add | Close]):
    """One websocket connection, whose text frames are the messages of this actor's protocol."""

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        super().__init__()
        self.websocket = websocket
        self.total = 0  # the actor's state: only its own task changes it

    async def mainloop_setup(self) -> None:
        self.register_input_task(self.websocket.receive, self.on_frame)
        await super().mainloop_setup()

    async def on_frame(self, task: asyncio.Task[aiohttp.WSMessage]) -> None:
        frame = task.result()  # an error while receiving ends the actor with that error
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise EndMainLoop()
        try:
            request = self.protocol.validate_envelope(frame.data)
        except InvalidPayload as error:
            await self.send({"type": "error", "data": error.to_dict()}, reply_to=error.id)
            return
        # An input-task handler runs in this actor's task, never while a message is being handled:
        # it calls the message's handler directly (telling the message to itself would leave the
        # reply nowhere to go, and asking itself would wait for itself).
        handler = self.protocol[type(request.message)].handler
        reply = await handler(self, request.message)
        if reply is not None:  # every reply of this protocol is a message, or None
            await self.send(self.protocol.dump(reply), reply_to=request.id)

    async def send(self, frame: dict[str, Any], reply_to: str | int | None) -> None:
        """Send one JSON frame, answering the frame whose ``id`` is ``reply_to``, if any."""
        if reply_to is not None:
            frame["reply_to"] = reply_to
        await self.websocket.send_json(frame)

    @handles(Echo)
    async def echo(self, msg: Echo) -> Echoed:
        return Echoed(text=msg.text)

    @handles(Add)
    async def add(self, msg: Add) -> Total:
        self.total += msg.value
        return Total(value=self.total)

    @handles(Close)
    async def close(self, msg: Close) -> None:
        raise EndMainLoop()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    websocket = web.WebSocketResponse()
    await websocket.prepare(request)
    session = Session(websocket)
    async with session:
        # Wait until the session's mainloop ends; returning then closes the connection.
        await session
    return websocket


def make_app() -> web.Application:
    """The server's application, served at ``/``."""
    app = web.Application()
    app.add_routes([web.get("/", websocket_handler)])
    return app


if __name__ == "__main__":
    web.run_app(make_app(), port=8080)
