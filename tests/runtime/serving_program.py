"""A program that runs a tree of actors with `actorio.serve` until SIGINT or SIGTERM; run by
tests/runtime/test_shutdown.py in a subprocess. Each step prints a line. With ``--hang`` the second
child's teardown never ends, so that only a second signal (which cancels) ends the program. With
``--spin`` the second child keeps telling itself (it never waits for its mailbox), which must not
keep the signal from being handled."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

from actorio import Actor, Message, handles, serve


class Spin(Message):
    pass


class Spinner(Actor[Spin]):
    """Loops by telling itself, as a long computation split into messages does."""

    def __init__(self, name: str) -> None:
        super().__init__(identifier=name)
        self.spins = 0

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.tell_nowait(Spin())

    @handles(Spin)
    async def spin(self, msg: Spin) -> None:
        self.spins += 1
        if self.spins == 1:
            print("spinning", flush=True)
        self.tell_nowait(Spin())

    async def mainloop_teardown(self) -> None:
        print(f"teardown {self.identifier}", flush=True)
        await super().mainloop_teardown()


class Child(Actor[Any]):
    def __init__(self, name: str, hang: bool) -> None:
        super().__init__(identifier=name)
        self.hang = hang

    async def mainloop_teardown(self) -> None:
        print(f"teardown {self.identifier}", flush=True)
        if self.hang:
            await asyncio.Event().wait()
        await super().mainloop_teardown()


class Root(Actor[Any]):
    child_stop_timeout: ClassVar[float | None] = None  # children may take as long as they like

    def __init__(self, hang: bool, spin: bool) -> None:
        super().__init__(identifier="root")
        self.hang = hang
        self.spin = spin

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        await self.register_child(Child("first", hang=False))
        await self.register_child(Spinner("second") if self.spin else Child("second", hang=self.hang))
        print("ready", flush=True)

    async def mainloop_teardown(self) -> None:
        print("teardown root", flush=True)
        await super().mainloop_teardown()


async def main(hang: bool, spin: bool) -> None:
    await serve(Root(hang, spin))
    print("served", flush=True)


if __name__ == "__main__":
    asyncio.run(main("--hang" in sys.argv[1:], "--spin" in sys.argv[1:]))
