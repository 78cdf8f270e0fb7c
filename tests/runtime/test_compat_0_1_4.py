"""actorio 0.1.4's names, kept for code written against it: each works, and warns where a newer
name is better. (The original package's own tests run in tests/original_0_1_4/.)"""

from __future__ import annotations

import asyncio
import importlib
import sys
import warnings

import pytest

import actorio
from actorio import Actor, ActorioException, ActorRef, Message, Reference


def test_actor_reference_is_actor_ref_and_warns() -> None:
    with pytest.warns(
        DeprecationWarning, match=r"actorio.ActorReference is actorio 0.1.4's name: use ActorRef"
    ):
        from actorio import ActorReference  # type: ignore[attr-defined]  # unknown to type checkers
    assert ActorReference is ActorRef
    with pytest.warns(DeprecationWarning, match="use ActorRef"):
        assert actorio.ActorReference is ActorRef  # type: ignore[attr-defined]


def test_importing_an_old_name_warns_once_at_the_import() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from actorio import ActorReference, wait_for  # type: ignore[attr-defined]  # unknown to type checkers
    assert ActorReference is ActorRef
    assert callable(wait_for)
    assert [(str(w.message).split(" ")[0], w.category, w.filename) for w in caught] == [
        ("actorio.ActorReference", DeprecationWarning, __file__),
        ("actorio.wait_for", DeprecationWarning, __file__),
    ]


def test_the_old_names_are_not_exported_nor_kept() -> None:
    for name in ("ActorReference", "wait_for"):
        assert name not in actorio.__all__
        assert name not in dir(actorio)
        with pytest.warns(DeprecationWarning, match=f"actorio.{name} is actorio 0.1.4's name"):
            getattr(actorio, name)
        assert name not in vars(actorio)  # each use warns again


@pytest.mark.asyncio
async def test_wait_for_waits_and_shields() -> None:
    with pytest.warns(DeprecationWarning, match="use asyncio.wait_for"):
        wait_for = actorio.wait_for  # type: ignore[attr-defined]
    assert await wait_for(asyncio.sleep(0, "done"), timeout=10) == "done"
    blocked = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(blocked)
    with pytest.raises(asyncio.TimeoutError):
        await wait_for(task, timeout=0, shield=True)
    assert not task.cancelled()  # shielded: it goes on
    blocked.set_result(1)
    assert await task == 1
    never_awaited = asyncio.sleep(0)
    with pytest.raises(TypeError, match="no longer takes a loop"):
        await wait_for(never_awaited, timeout=1, loop=asyncio.get_running_loop())
    never_awaited.close()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("actorio.actor", {"Actor", "EndMainLoop"}),
        ("actorio.messaging", {"Message", "DataMessage", "MessageQueue"}),
        ("actorio.reference", {"ActorReference", "Reference", "ask"}),
        ("actorio.errors", {"ActorioException", "EndMainLoop", "UnhandledMessage"}),
    ],
)
def test_the_original_modules_import_and_warn(module: str, names: set[str]) -> None:
    sys.modules.pop(module, None)
    with pytest.warns(
        DeprecationWarning, match=rf"{module} is actorio 0.1.4's module: import .* from actorio"
    ):
        imported = importlib.import_module(module)
    assert set(imported.__all__) == names
    for name in names - {"MessageQueue", "ActorReference"}:
        assert getattr(imported, name) is getattr(actorio, name)


@pytest.mark.asyncio
async def test_the_original_message_queue_refuses_a_message_without_sender() -> None:
    sys.modules.pop("actorio.messaging", None)
    with pytest.warns(DeprecationWarning, match="actorio.messaging is actorio 0.1.4's module"):
        from actorio.messaging import MessageQueue
    with pytest.warns(DeprecationWarning, match=r"0\.1\.4's name of an inbox queue: use an asyncio\.Queue"):
        queue = MessageQueue()
    with pytest.raises(ActorioException, match="should have a sender"):
        queue.put_nowait(Message())
    with pytest.raises(ActorioException):
        await queue.put(Message())
    message = Message(sender=Reference())
    await queue.put(message)
    assert queue.get_nowait() is message


@pytest.mark.asyncio
async def test_register_input_task_takes_coro_to_run_with_a_warning() -> None:
    handled: list[object] = []
    done = asyncio.Event()

    async def produce() -> str:
        return "input"

    async def on_input(task: asyncio.Task[str]) -> None:
        handled.append(task.result())
        done.set()

    actor: Actor = Actor()
    with pytest.warns(DeprecationWarning, match=r"coro_to_run=\.\.\.\) is actorio 0.1.4's name") as warned:
        actor.register_input_task(produce, coro_to_run=on_input, count=1)
    assert warned[0].filename == __file__  # the caller's line
    with pytest.raises(TypeError, match="not both"):
        actor.register_input_task(produce, on_input, coro_to_run=on_input)
    with pytest.raises(TypeError, match="missing its handler"):
        actor.register_input_task(produce)
    async with actor:
        await asyncio.wait_for(done.wait(), timeout=10)
    assert handled == ["input"]
