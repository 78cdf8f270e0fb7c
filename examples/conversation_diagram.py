"""Record a conversation in a test and draw it: a Mermaid sequence diagram of who told or asked
what to whom, and a Mermaid graph of the actor tree. Run it: ``python examples/conversation_diagram.py``."""

from __future__ import annotations

import asyncio

from actorio import Actor, ActorRef, Message, handles
from actorio.lowlevel import actor_of
from actorio.testing import Conversation, tree_diagram


class Charge(Message[str]):
    card: str


class Record(Message):
    card: str


class Ledger(Actor[Record]):
    @handles(Record)
    async def record(self, message: Record) -> None:
        pass


class Payments(Actor[Charge]):
    ledger: ActorRef[Record]

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.ledger = await self.supervise(Ledger, name="ledger")

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        await self.ledger.tell(Record(card=message.card))
        return "charged"


class Shop(Actor[Charge]):
    payments: ActorRef[Charge]

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.payments = await self.supervise(Payments, name="payments")

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        return await self.payments.ask(message)


async def main() -> None:
    with Conversation() as conversation:
        async with Shop(identifier="shop") as shop:
            await shop.ask(Charge(card="4111"))
            root = actor_of(shop)
            assert root is not None
            tree = tree_diagram(root)
    print(conversation.sequence_diagram(), end="")
    print(tree, end="")


if __name__ == "__main__":
    asyncio.run(main())
