"""Fault tolerance: a flaky worker restarted with backoff, death watch, a periodic timer, a bounded
mailbox, and a program that runs until it is done or stopped (Ctrl-C, SIGTERM).

    python examples/supervision.py            # 12 ticks, then it stops by itself
    python examples/supervision.py --forever  # a page every 0.5 s until Ctrl-C / SIGTERM stops the tree

The fetcher fails on every third page, and each failure restarts it: the crawler's restart
intensity (at most 10 restarts within 10 s) is what a page every 0.5 s stays under for good (a
restart every 1.5 s), and what a tight loop of failures would exceed (the crawler would then fail
with ``RestartIntensityExceeded``).
"""

from __future__ import annotations

import sys

from actorio import (
    Actor,
    ActorRef,
    Backoff,
    EndMainLoop,
    Message,
    SupervisorStrategy,
    Terminated,
    handles,
    run,
)


class Fetch(Message):
    """Fetch one page (a told message: nobody waits for it)."""

    page: int


class Tick(Message):
    """The crawler's periodic timer."""


class Done(Message):
    """Told after the last page: the fetcher tells it back once every page before it was handled."""


class Fetcher(Actor[Fetch | Done]):
    """Fails on every third page. Its state (pages fetched) starts again with each incarnation."""

    mailbox_capacity = 100  # await tell waits when 100 pages are queued

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.fetched = 0

    @handles(Fetch)
    async def fetch(self, msg: Fetch) -> None:
        if msg.page % 3 == 2:
            raise ConnectionError(f"page {msg.page}: connection reset")
        self.fetched += 1
        self.log.append(f"fetched page {msg.page}")

    @handles(Done)
    async def done(self, msg: Done) -> None:
        await msg.sender.tell(Done())

    async def post_restart(self, error: BaseException | None) -> None:
        self.log.append(f"restarted after {error!r}")


class Crawler(Actor[Tick | Done | Terminated]):
    """Supervises the fetcher: each failure restarts it after a growing delay; the page that failed
    is a dead letter, the pages queued behind it are fetched by the new incarnation. After its
    last page it stops once the fetcher has handled every page (`Done` comes back)."""

    supervisor_strategy = SupervisorStrategy(
        "one_for_one",
        max_restarts=10,
        within=10.0,
        backoff=Backoff(min_delay=0.01, max_delay=0.2, factor=2.0, jitter=0.1, reset_after=30.0),
    )

    def __init__(self, ticks: int | None, interval: float = 0.02) -> None:
        super().__init__()
        self.ticks = ticks
        self.interval = interval
        self.page = 0
        self.log: list[str] = []
        self.fetcher: ActorRef[Fetch | Done] | None = None

    async def mainloop_setup(self) -> None:
        await super().mainloop_setup()
        self.fetcher = await self.supervise(lambda: Fetcher(self.log), name="fetcher")
        self.watch(self.fetcher)  # a Terminated message if it stops for good
        self.start_periodic_timer("tick", Tick(), interval=self.interval)
        print("crawling", flush=True)

    @handles(Tick)
    async def tick(self, msg: Tick) -> None:
        assert self.fetcher is not None
        await self.fetcher.tell(Fetch(page=self.page))
        self.page += 1
        if self.ticks is not None and self.page >= self.ticks:
            self.cancel_timer("tick")
            await self.fetcher.tell(Done(sender=self))  # behind the pages, restarts or not

    @handles(Done)
    async def fetched_all(self, msg: Done) -> None:
        raise EndMainLoop()

    @handles(Terminated)
    async def fetcher_gone(self, msg: Terminated) -> None:
        self.log.append(f"{msg.identifier} stopped for good: {msg.reason!r}")
        raise EndMainLoop()

    async def mainloop_teardown(self) -> None:
        await super().mainloop_teardown()  # stops the fetcher (its queued pages are dead letters)
        for line in self.log:
            print(line)
        print(f"crawler stopped after {self.page} pages", flush=True)


def main() -> None:
    run(Crawler(ticks=None, interval=0.5) if "--forever" in sys.argv else Crawler(ticks=12))


if __name__ == "__main__":
    main()
