"""Must fail: a message outside an entity's protocol, the wrong reply type, a key that is not a
string. See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is ever run.
"""

from __future__ import annotations

from actorio import Actor, Message, ask, handles
from actorio.nats import Node


class Deposit(Message):
    amount: int


class Balance(Message[int]):
    pass


class Other(Message[str]):
    pass


class Account(Actor[Deposit | Balance]):
    def __init__(self, key: str) -> None:
        super().__init__()

    @handles(Deposit)
    async def deposit(self, msg: Deposit) -> None:
        pass

    @handles(Balance)
    async def read(self, msg: Balance) -> int:
        return 0


async def tell_outside_the_protocol(node: Node) -> None:
    await node.entity(Account, "alice").tell(Other())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def ask_outside_the_protocol(node: Node) -> None:
    account = node.entity(Account, "alice")
    await ask(account, Other())  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def wrong_reply_type(node: Node) -> None:
    account = node.entity(Account, "alice")
    text: str = await ask(account, Balance())  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    del text


def key_not_a_string(node: Node) -> None:
    node.entity(Account, 42)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def durable_not_settings(node: Node) -> None:
    await node.host(Account, durable="yes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
