"""Pools and durable mailboxes across OS processes on a real nats-server: a queue-group pool sharing
messages exactly once, a durable consumer killed mid-handler losing nothing, duplicates suppressed,
and a server restarted under running clients.

Re-run with other sizes: ``NATS_POOL_PROCESSES=5 NATS_POOL_MESSAGES=50000 NATS_KILL_MESSAGES=2000
NATS_KILL_AT=700 NATS_DURABLE_POOL_MESSAGES=3000 pytest tests/nats/test_nats_pools.py``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from actorio import InvalidPayload
from actorio.nats import Durable, LocalServer, Node
from actorio.nats._durable import stream_name
from tests.nats_support.actors import Double, Greeter, Job, Record, Recorder, Report, handled_ids
from tests.nats_support.processes import wait_until, worker

pytestmark = pytest.mark.asyncio(loop_scope="function")

POOL_PROCESSES = int(os.environ.get("NATS_POOL_PROCESSES", "3"))
POOL_MESSAGES = int(os.environ.get("NATS_POOL_MESSAGES", "10000"))
KILL_MESSAGES = int(os.environ.get("NATS_KILL_MESSAGES", "300"))
KILL_AT = int(os.environ.get("NATS_KILL_AT", "40"))
DURABLE_POOL_MESSAGES = int(os.environ.get("NATS_DURABLE_POOL_MESSAGES", "500"))


async def test_a_pool_of_three_processes_handles_each_message_exactly_once(nats_url: str, node: Node) -> None:
    count = POOL_MESSAGES
    async with AsyncExitStack() as stack:
        for index in range(POOL_PROCESSES):
            await stack.enter_async_context(
                worker("--url", nats_url, "--mode", "greeter", "--name", "pool", "--also", f"pool-{index}")
            )
        pool = node.ref("pool", Greeter)
        for n in range(count):
            pool.tell_nowait(Record(n=n))
        await pool.tell(Record(n=count))  # in order after the others: all are sent
        members = [node.ref(f"pool-{index}", Greeter) for index in range(POOL_PROCESSES)]
        shares: list[list[int]] = []

        async def all_handled() -> bool:
            shares[:] = [await member.ask(Report(), timeout=5) for member in members]
            return sum(map(len, shares)) >= count + 1

        await wait_until(all_handled, max(30.0, count / 300), interval=0.1)
        handled = [n for share in shares for n in share]
        assert sorted(handled) == list(range(count + 1))  # each once: none lost, none twice
        assert all(share for share in shares), [len(share) for share in shares]  # all took part
        assert all(share == sorted(share) for share in shares)  # each process saw its share in order


@pytest.mark.timeout(90)
async def test_a_durable_consumer_killed_mid_handler_loses_nothing(
    nats_url: str, node: Node, tmp_path: Path
) -> None:
    count, hang_at = KILL_MESSAGES, KILL_AT
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    common = ("--url", nats_url, "--mode", "recorder", "--name", "jobs", "--redelivery", "1")
    jobs = node.ref("jobs", Recorder, durable=True)
    async with worker(*common, "--record", str(first), "--hang-at", str(hang_at)) as doomed:
        for n in range(count):
            await jobs.tell(Job(id=n))  # returns once stored

        async def hanging() -> bool:
            return f"start {hang_at}\n" in (first.read_text() if first.exists() else "")

        await wait_until(hanging, 20)
        doomed.kill()  # kill -9, in the middle of the handler of job 40
        await doomed.process.wait()
    before = handled_ids(first)
    assert hang_at not in before
    async with worker(*common, "--record", str(second)):

        async def all_handled() -> bool:
            return set(handled_ids(first)) | set(handled_ids(second)) == set(range(count))

        await wait_until(all_handled, 30, interval=0.05)
        assert hang_at in handled_ids(second)  # redelivered after the kill
        # Nothing handled twice but what was unacknowledged at the kill (the prefetched batch).
        duplicates = set(before) & set(handled_ids(second))
        assert len(duplicates) <= 8, sorted(duplicates)


async def test_durable_dedupe_and_ask(node: Node, tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "jobs.txt")
    await node.publish("dedupe", recorder, durable=Durable(redelivery_delay=2))
    jobs = node.ref("dedupe", Recorder, durable=True)
    await jobs.tell(Job(id=1), msg_id="job-1")
    await jobs.tell(Job(id=1), msg_id="job-1")  # a retrying sender: stored once
    await jobs.tell(Job(id=2))
    await jobs.tell(Job(id=2))  # no id given: two messages
    # An ask to a durable actor is stored too, and answered by the handler.
    assert await jobs.ask(Report(), timeout=10) == [1, 2, 2]
    await recorder.stop()


async def test_a_durable_name_under_a_prefix_of_several_tokens(nats_url: str, tmp_path: Path) -> None:
    # A dotted prefix made a stream name with a dot, which the server refused. Now its dots
    # are '_', with a digest that tells it from a prefix of fewer tokens and a dotted name; the
    # streams of a prefix without a dot keep their names.
    assert stream_name("actorio", "jobs") == "ACTORIO_JOBS_F932566D"
    assert stream_name("acme.shop", "jobs") != stream_name("acme", "shop.jobs")
    async with await Node.connect(nats_url, prefix="acme.shop") as node:
        recorder = Recorder(tmp_path / "jobs.txt")
        await node.publish("jobs", recorder, durable=Durable())
        jobs = node.ref("jobs", Recorder, durable=True)
        await jobs.tell(Job(id=1))
        assert await jobs.ask(Report(), timeout=10) == [1]
        info = await node.client.jetstream().stream_info(stream_name("acme.shop", "jobs"))
        assert info.config.subjects is not None
        assert all(s.startswith("acme.shop.") for s in info.config.subjects)
        await recorder.stop()


async def test_ordered_durable_actor_handles_in_stream_order(node: Node, tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "jobs.txt")
    await node.publish("ordered", recorder, durable=Durable(redelivery_delay=2, ordered=True))
    jobs = node.ref("ordered", Recorder, durable=True)
    for n in range(20):
        await jobs.tell(Job(id=n))
    assert await jobs.ask(Report(), timeout=10) == list(range(20))
    await recorder.stop()


async def test_durable_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="redelivery_delay"):
        Durable(redelivery_delay=0)
    with pytest.raises(ValueError, match="prefetch"):
        Durable(prefetch=0)


@pytest.mark.timeout(90)
async def test_server_restarted_under_running_clients(tmp_path: Path) -> None:
    with LocalServer(store_dir=tmp_path) as server:
        client = await Node.connect(server.url, reconnect_wait=0.1)
        async with client, worker("--url", server.url, "--mode", "greeter", "--name", "survivor"):
            greeter = client.ref("survivor", Greeter)
            assert await greeter.ask(Double(value=1), timeout=5) == 2
            server.restart()

            async def answered() -> bool:
                try:
                    return await greeter.ask(Double(value=2), timeout=0.5) == 4
                except (asyncio.TimeoutError, Exception):
                    return False

            await wait_until(answered, 30, interval=0.1)
            assert client.reconnections >= 1
            # Published actors were subscribed again: tells reach them too.
            await greeter.tell(Record(n=5))
            assert 5 in await greeter.ask(Report(), timeout=5)


@pytest.mark.timeout(90)
async def test_a_durable_mailbox_survives_a_server_restart(tmp_path: Path) -> None:
    record = str(tmp_path / "kept.txt")
    with LocalServer(store_dir=tmp_path / "js") as server:
        client = await Node.connect(server.url, reconnect_wait=0.1)
        async with (
            client,
            worker("--url", server.url, "--mode", "recorder", "--name", "kept", "--record", record),
        ):
            jobs = client.ref("kept", Recorder, durable=True)
            await jobs.tell(Job(id=1))
            assert await jobs.ask(Report(), timeout=10) == [1]
            server.stop()
            # Told while the server is down: the tell retries until the restarted stream stores it.
            told = asyncio.ensure_future(jobs.tell(Job(id=2), msg_id="job-2"))
            server.start()
            await asyncio.wait_for(told, 15)
            await jobs.tell(Job(id=3))

            async def all_handled() -> bool:
                try:
                    return await jobs.ask(Report(), timeout=1) == [1, 2, 3]
                except asyncio.TimeoutError:
                    return False

            await wait_until(all_handled, 30, interval=0.1)


async def test_a_pool_member_killed_leaves_the_others_serving(nats_url: str, node: Node) -> None:
    """Without durable: what the killed process held is lost (at most once); the server drops its
    subscription when its connection closes, and the others get every later message."""
    survivor = worker("--url", nats_url, "--mode", "greeter", "--name", "pool2", "--also", "pool2-a")
    async with survivor, worker("--url", nats_url, "--mode", "greeter", "--name", "pool2") as doomed:
        pool = node.ref("pool2", Greeter)
        doomed.kill()
        await doomed.process.wait()

        async def answered() -> bool:
            try:
                return await pool.ask(Double(value=1), timeout=0.5) == 2
            except asyncio.TimeoutError:
                return False

        await wait_until(answered, 10)
        for n in range(50):
            await pool.tell(Record(n=n))
        assert await node.ref("pool2-a", Greeter).ask(Report(), timeout=5) == list(range(50))


async def test_the_last_durable_settings_apply_to_the_pool(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = Recorder(tmp_path / "a.txt"), Recorder(tmp_path / "b.txt")
    await node.publish("settings", first, durable=Durable(redelivery_delay=2))
    with caplog.at_level("WARNING", logger="actorio.nats"):
        await node.publish("settings", second, durable=Durable(redelivery_delay=3))
    assert "durable 'settings' published with other settings: ack_wait 2.0 -> 3" in caplog.text
    await first.stop()
    await second.stop()


async def test_a_durable_pool_shares_messages_exactly_once_without_failures(
    nats_url: str, node: Node, tmp_path: Path
) -> None:
    count = DURABLE_POOL_MESSAGES
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    common = ("--url", nats_url, "--mode", "recorder", "--name", "shared", "--redelivery", "30")
    async with worker(*common, "--record", str(files[0])), worker(*common, "--record", str(files[1])):
        jobs = node.ref("shared", Recorder, durable=True)
        for n in range(count):
            await jobs.tell(Job(id=n))

        async def all_handled() -> bool:
            return sum(len(handled_ids(file)) for file in files) >= count

        await wait_until(all_handled, 30, interval=0.05)
        handled = handled_ids(files[0]) + handled_ids(files[1])
        assert sorted(handled) == list(range(count))
        assert all(handled_ids(file) for file in files)  # both took part


async def test_close_drains_what_was_queued(nats_url: str, node: Node) -> None:
    async with worker("--url", nats_url, "--mode", "greeter", "--name", "drained"):
        sender = await Node.connect(nats_url)
        greeter = sender.ref("drained", Greeter)
        for n in range(1000):
            greeter.tell_nowait(Record(n=n))
        await sender.close()  # returns once the queued tells are sent
        assert await node.ref("drained", Greeter).ask(Report(), timeout=5) == list(range(1000))


async def test_invalid_payloads_to_a_durable_actor(node: Node, tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "jobs.txt")
    await node.publish("strict-jobs", recorder, durable=Durable(redelivery_delay=1))
    jobs = node.ref("strict-jobs", Recorder, durable=True)
    with pytest.raises(InvalidPayload) as caught:
        await jobs.ask_payload({"type": "Job", "data": {"id": "x"}}, timeout=10)
    assert caught.value.paths == ("data.id",)
    await jobs.tell_payload(b"{not json")  # stored, refused on delivery, never delivered again
    await jobs.tell_payload({"type": "Job", "data": {"id": 7}})
    assert await jobs.ask(Report(), timeout=10) == [7]
    await recorder.stop()
