"""A websocket echo server: one actor per client, fed by an input task on ``websocket.receive``.

Text frames are sent back; any other frame (binary, close, error) ends that client's actor,
which closes its connection. The server keeps serving other clients.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from actorio import Actor, EndMainLoop


class Client(Actor):
    """Echoes the text frames of one websocket connection."""

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        super().__init__()
        self.websocket = websocket

    async def mainloop_setup(self) -> None:
        # Each time `websocket.receive()` completes, its task is passed to `on_frame`, in this
        # actor's task; then `receive()` is called again.
        self.register_input_task(self.websocket.receive, self.on_frame)
        await super().mainloop_setup()

    async def on_frame(self, task: asyncio.Task[aiohttp.WSMessage]) -> None:
        frame = task.result()  # an error while receiving ends the actor with that error
        if frame.type is aiohttp.WSMsgType.TEXT:
            await self.websocket.send_str(frame.data)
        else:
            raise EndMainLoop()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    websocket = web.WebSocketResponse()
    await websocket.prepare(request)
    client = Client(websocket)
    async with client:
        # Wait until the client's mainloop ends; returning then closes the connection.
        await client
    return websocket


def make_app() -> web.Application:
    """The echo server's application, served at ``/``."""
    app = web.Application()
    app.add_routes([web.get("/", websocket_handler)])
    return app


if __name__ == "__main__":
    web.run_app(make_app(), port=8080)
