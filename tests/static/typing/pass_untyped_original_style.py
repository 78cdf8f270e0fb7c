"""Must pass under mypy --strict and pyright strict: the original README's untyped style.

The three examples of examples/seed/ (hello world, actor spawning, websocket echo), annotated only
where strict mode asks for annotations: ``class Greeter(Actor)``, ``handle_message``, ``Message()``,
``DataMessage(data=..., sender=self)``, ``Reference()`` inboxes, ``message.sender.tell(...)`` and
an ask whose reply is whatever the actor told the sender (``Any``). A bare ``DataMessage`` is
``DataMessage[Any]``: its type parameter defaults to ``Any``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
from aiohttp import web
from typing_extensions import assert_type

from actorio import Actor, ActorRef, DataMessage, EndMainLoop, Message, Reference, Sender, ask

# -- hello world -------------------------------------------------------------------------------


class Greeter(Actor):
    # Here we override the handle_message method to send a `DataMessage` with the data "Hello World!".
    async def handle_message(self, message: Message) -> None:
        assert_type(message.sender, Sender)
        await message.sender.tell(DataMessage(data="Hello World!", sender=self))


async def hello_world() -> None:
    async with Greeter() as greeter:
        assert_type(greeter, ActorRef[Message[Any]])
        reply: DataMessage = await ask(greeter, Message())
        assert_type(await ask(greeter, Message()), Any)
        assert_type(await greeter.ask(Message()), Any)
    print(reply.data)


# -- actor spawning ----------------------------------------------------------------------------


async def blocking_operation() -> int:
    sleep_time = random.randint(0, 10)
    await asyncio.sleep(sleep_time)
    return sleep_time


class RequestMessage(Message):
    """A request to do some computation or blocking call."""


class ResponseMessage(DataMessage):
    """The result of a computation."""


class Worker(Actor):
    async def handle_message(self, message: Message) -> None:
        sleep_time = await blocking_operation()
        await message.sender.tell(ResponseMessage(data=sleep_time, sender=self))
        raise EndMainLoop()


class Manager(Actor):
    async def handle_message(self, message: Message) -> None:
        if isinstance(message, RequestMessage):
            child = await self.register_child(Worker())
            assert_type(child, ActorRef[Message[Any]])
            await child.tell(message)


async def actor_spawning() -> None:
    me = Reference()
    async with Manager() as manager:
        for _ in range(10):
            await manager.tell(RequestMessage(sender=me))
        for _ in range(10):
            message = await me.inbox.get()
            assert_type(message, Any)
            print(f"Got a response with result {message.data}")


# -- websocket echo ----------------------------------------------------------------------------


class Client(Actor):
    def __init__(self, websocket: web.WebSocketResponse) -> None:
        self.websocket = websocket
        super().__init__()

    async def handle_websocket_event(self, task: asyncio.Task[aiohttp.WSMessage]) -> None:
        try:
            msg = task.result()
        except Exception as e:
            self.logger.exception(e)
            raise EndMainLoop() from e
        if msg.type == aiohttp.WSMsgType.TEXT:
            await self.websocket.send_str(msg.data)
        else:
            raise EndMainLoop()

    async def mainloop_setup(self) -> None:
        self.register_input_task(self.websocket.receive, self.handle_websocket_event)
        await super().mainloop_setup()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    client_actor = Client(websocket=ws)
    async with client_actor:
        await client_actor
    return ws


# -- other shapes of the original API ----------------------------------------------------------


class Echo(Actor):
    async def handle_message(self, message: Message[Any]) -> None:
        sender = message.sender
        await sender.tell(message)
        sender.tell_nowait(DataMessage(data=[1, 2, 3]))
        await sender.tell(DataMessage(data={"any": "payload"}, sender=self.reference))
        print(sender.identifier)


async def untyped_refs_and_actors(ref: ActorRef[Message[Any]]) -> None:
    echo = Echo()
    await echo.start()
    await echo.tell(Message())
    await ref.tell(Message(sender=echo))
    assert_type(await ask(echo, Message(sender=Reference())), Any)
    assert_type(await ref.ask(DataMessage(data=1)), Any)
    await echo.stop()
    await echo.run_until_stopped()
    await echo.wait()
    assert_type(echo.children, list[Actor[Any]])
