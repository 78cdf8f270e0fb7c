"""Running a tree of actors as a program: until it stops, or until SIGINT / SIGTERM stops it."""

# pyright: reportPrivateUsage=false
# serve() waits on the root actor's task, as the actor's own ``wait`` does.

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from typing import Any

from ._actor import Actor
from ._gc_policy import DEFAULT_GC_POLICY, AppliedGcPolicy, GcPolicy

__all__ = ["run", "serve"]

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def serve(
    root: Actor[Any],
    *,
    signals: Iterable[signal.Signals] = DEFAULT_SIGNALS,
    stop_timeout: float | None = None,
    gc_policy: GcPolicy | None = None,
) -> None:
    """Start ``root`` (unless it is started) and wait until it stops; on one of ``signals``, stop
    it, which stops the whole tree in order (children in reverse start order, each within its
    stop timeout) and runs every teardown once.

    A second signal while stopping cancels the root at once. ``stop_timeout`` bounds the root's
    own stop (then it is cancelled). Raises the root's failure, if it failed; returns normally if
    it stopped cleanly or on a signal. The signal handlers are removed on return. Where the loop
    cannot handle signals (not the main thread, Windows), it only waits.

    ``gc_policy`` (none by default here; `run` applies `GcPolicy()`): how the cyclic garbage
    collector runs meanwhile (see `GcPolicy`); the collector is restored on return.
    """
    applied = gc_policy.apply() if gc_policy is not None else None
    try:
        await _serve(root, signals, stop_timeout, applied)
    finally:
        if applied is not None:
            applied.restore()


async def _serve(
    root: Actor[Any],
    signals: Iterable[signal.Signals],
    stop_timeout: float | None,
    applied: AppliedGcPolicy | None,
) -> None:
    loop = asyncio.get_running_loop()
    if not root.started:
        await root.start()
    if applied is not None:
        applied.started()
    task = root._actor_task
    assert task is not None
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if stopping:
            task.cancel()  # asked twice: do not wait for the handlers any longer
            return
        stopping.append(loop.create_task(root.stop(stop_timeout)))

    installed: list[signal.Signals] = []
    for number in signals:
        try:
            loop.add_signal_handler(number, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(number)
    try:
        await asyncio.wait([task])
        if stopping:
            await stopping[0]
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error


def run(
    root: Actor[Any],
    *,
    signals: Iterable[signal.Signals] = DEFAULT_SIGNALS,
    stop_timeout: float | None = None,
    gc_policy: GcPolicy | None = DEFAULT_GC_POLICY,
) -> None:
    """``asyncio.run(serve(root, ...))``: the entry point of a program that runs until stopped.

    It owns the process, so by default it applies `GcPolicy()` to the cyclic garbage collector
    (freeze what start-up built, collect the young generation less often; restored on return);
    ``gc_policy=None`` leaves the collector alone.
    """
    asyncio.run(serve(root, signals=signals, stop_timeout=stop_timeout, gc_policy=gc_policy))
