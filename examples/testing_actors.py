"""Testing the Manager/Worker example (actor_spawning.py) by its message sequence.

Run it with ``python -m pytest examples/testing_actors.py``: actorio's pytest plugin provides
the ``actor_kit`` and ``mock_clock`` fixtures.
"""

from __future__ import annotations

import asyncio

import pytest
from actor_spawning import Compute, Manager, Result, Worker

from actorio import NO_REPLY
from actorio.testing import ActorTestKit, MockClock, TestProbe, run_handler


async def slow_operation() -> int:
    """The worker's blocking operation: one second, of the mock clock's time."""
    await asyncio.sleep(1)
    return 42


@pytest.mark.asyncio
async def test_each_request_is_answered_by_its_worker(actor_kit: ActorTestKit, mock_clock: MockClock) -> None:
    manager = await actor_kit.spawn(Manager(slow_operation))
    probe = TestProbe(Result)
    for _ in range(3):
        request = probe.asking(Compute())  # an ask whose reply goes to the probe
        await manager.tell(request)

    for _ in range(3):
        result = await probe.expect_message(Result)
        assert result.value == 42
    assert mock_clock.time() == 1.0  # three workers, each for one second, in parallel
    await probe.expect_no_message()


@pytest.mark.asyncio
@pytest.mark.mock_clock  # the worker's second passes at once
async def test_manager_hands_the_request_to_a_new_worker() -> None:
    manager = Manager(slow_operation)  # not started: one handler runs, without a mainloop

    handed = await run_handler(manager, Compute())
    assert handed.reply is NO_REPLY  # the manager does not answer: its worker will
    [worker] = handed.spawned
    assert isinstance(worker, Worker)
    assert handed.sent_to(worker) == [handed.message]  # the request, as it came

    answered = await run_handler(worker, handed.message)
    assert isinstance(answered.reply, Result)
    assert answered.reply.value == 42
    assert answered.stopped  # a worker serves one request
