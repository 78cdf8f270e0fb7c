"""Everything under examples/ runs here.

- The original README's examples (examples/seed/, verbatim) run unchanged, as scripts.
- The typed examples (examples/*.py) are imported and driven in-process, with the slow parts
  injected; hello_world also runs as a script.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from typing_extensions import assert_type

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed"

# examples/ holds scripts, not a package: import them by file name.
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import actor_spawning  # noqa: E402
import hello_world  # noqa: E402
import supervision  # noqa: E402
import websocket_echo  # noqa: E402

from actorio import ask  # noqa: E402
from actorio.testing import ActorTestKit, TestProbe  # noqa: E402

# Every wait in these tests is bounded by this many seconds.
BOUND = 10.0
SEED_WEBSOCKET_PORT = 8080  # hard-coded in the verbatim seed example


def run_script(path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- a real websocket client against an echo server ------------------------------------------


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def assert_echoes(websocket: aiohttp.ClientWebSocketResponse[bool], texts: list[str]) -> None:
    for text in texts:
        await websocket.send_str(text)
        frame = await websocket.receive(timeout=BOUND)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        assert frame.data == text


async def check_echo_server(session: aiohttp.ClientSession, url: str) -> None:
    """Text is echoed; a binary frame ends that client's actor (its connection closes); a second
    client is still served."""
    async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=BOUND)) as first:
        await assert_echoes(first, ["hello", "actorio", "ünïcödé ✓", "x" * 10_000])
        await first.send_bytes(b"\x00\x01 not text")
        frame = await first.receive(timeout=BOUND)
        assert frame.type is aiohttp.WSMsgType.CLOSE, frame
        assert first.closed
        assert first.close_code == aiohttp.WSCloseCode.OK

    async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=BOUND)) as second:
        await assert_echoes(second, ["still", "served"])
        await second.close()
        assert second.close_code == aiohttp.WSCloseCode.OK


# -- the original README examples, verbatim ---------------------------------------------------


def test_seed_hello_world() -> None:
    result = run_script(SEED / "hello_world.py", timeout=BOUND)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello World!\n"


def test_seed_actor_spawning() -> None:
    # Its workers sleep up to 10 s each, by design: the program runs unchanged, in virtual time.
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("virtual_time.py")), str(SEED / "actor_spawning.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 10, result.stdout
    for line in lines:
        match = re.fullmatch(r"Got a response with result (\d+)", line)
        assert match is not None, line
        assert 0 <= int(match.group(1)) <= 10


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server itself does: a port left in TIME_WAIT is free to serve again.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


async def wait_accepting(port: int, process: asyncio.subprocess.Process, bound: float) -> None:
    """Poll until something accepts connections on ``port``; fail if ``process`` exits first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        if process.returncode is not None:
            pytest.fail(f"the server exited with {process.returncode} before accepting connections")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), bound)
        except OSError:
            if loop.time() > deadline:
                pytest.fail(f"nothing accepted connections on port {port} within {bound} s")
            await asyncio.sleep(0.05)  # polling interval, bounded by the deadline above
            continue
        writer.close()
        await writer.wait_closed()
        return


@pytest.mark.asyncio
async def test_seed_websocket_echo(session: aiohttp.ClientSession) -> None:
    if port_in_use(SEED_WEBSOCKET_PORT):
        pytest.skip(f"port {SEED_WEBSOCKET_PORT}, hard-coded in the seed example, is already in use")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SEED / "websocket_echo.py"),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_accepting(SEED_WEBSOCKET_PORT, process, bound=20)
        await check_echo_server(session, f"http://127.0.0.1:{SEED_WEBSOCKET_PORT}/")
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.communicate(), BOUND)
        except asyncio.TimeoutError:
            process.kill()
            await process.communicate()


# -- examples/hello_world.py ------------------------------------------------------------------


def test_hello_world_script() -> None:
    result = run_script(EXAMPLES / "hello_world.py", timeout=BOUND)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello World!\n"


@pytest.mark.asyncio
async def test_hello_world_main(capsys: pytest.CaptureFixture[str]) -> None:
    await asyncio.wait_for(hello_world.main(), BOUND)
    assert capsys.readouterr().out == "Hello World!\n"


@pytest.mark.asyncio
async def test_greeter_replies_then_stops() -> None:
    greeter = hello_world.Greeter()
    async with greeter as reference:
        reply = await ask(reference, hello_world.Greet(name="Ada"), timeout=BOUND)
        assert_type(reply, hello_world.Greeting)
        assert isinstance(reply, hello_world.Greeting)
        assert reply.text == "Hello Ada!"
        await reference.tell(hello_world.Stop())
        await asyncio.wait_for(greeter.wait(), BOUND)
        assert greeter.stopped


# -- examples/actor_spawning.py ---------------------------------------------------------------


def counting_operation() -> actor_spawning.Operation:
    """An instant operation that returns 0, 1, 2, ... on successive calls."""
    counter = itertools.count()

    async def operation() -> int:
        return next(counter)

    return operation


@pytest.mark.asyncio
async def test_worker_answers_one_request_then_stops(actor_kit: ActorTestKit) -> None:
    worker = actor_spawning.Worker(counting_operation())
    reference = await actor_kit.spawn(worker)
    result = await ask(reference, actor_spawning.Compute(), timeout=BOUND)
    assert_type(result, actor_spawning.Result)
    assert isinstance(result, actor_spawning.Result)
    assert result.value == 0
    await asyncio.wait_for(worker.wait(), BOUND)
    assert worker.stopped


@pytest.mark.asyncio
async def test_manager_runs_requests_in_concurrent_workers(actor_kit: ActorTestKit) -> None:
    requests = 10
    started = 0
    all_started = asyncio.Event()
    release = asyncio.Event()

    async def gated_operation() -> int:
        nonlocal started
        started += 1
        if started == requests:
            all_started.set()
        await release.wait()
        return started

    manager = actor_spawning.Manager(gated_operation)
    reference = await actor_kit.spawn(manager)  # told, not asked: the results go nowhere
    for _ in range(requests):
        await reference.tell(actor_spawning.Compute())
    # Every worker is inside the operation at once: one worker per request.
    await asyncio.wait_for(all_started.wait(), BOUND)
    workers = manager.children
    assert len(workers) == requests
    assert all(isinstance(worker, actor_spawning.Worker) for worker in workers)
    release.set()
    # Each worker stops by itself once it has handled its request.
    await asyncio.wait_for(asyncio.gather(*(worker.wait() for worker in workers)), BOUND)
    assert all(worker.stopped for worker in workers)
    assert manager.running


@pytest.mark.asyncio
async def test_manager_asks_are_answered_by_their_workers(actor_kit: ActorTestKit) -> None:
    manager = await actor_kit.spawn(actor_spawning.Manager(counting_operation()))
    probe = TestProbe(actor_spawning.Result)
    for _ in range(10):
        request = probe.asking(actor_spawning.Compute())  # an ask whose reply goes to the probe
        await manager.tell(request)
    replies = [await probe.expect_message(actor_spawning.Result, timeout=BOUND) for _ in range(10)]
    # Each ask got its own worker's result: no reply lost, none delivered twice.
    assert sorted(reply.value for reply in replies) == list(range(10))
    await probe.expect_no_message()


@pytest.mark.asyncio
async def test_actor_spawning_main(capsys: pytest.CaptureFixture[str]) -> None:
    results = await asyncio.wait_for(actor_spawning.main(counting_operation()), BOUND)
    assert sorted(results) == list(range(10))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Got a response with result {value}" for value in results]


# -- examples/websocket_echo.py ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_websocket_echo(session: aiohttp.ClientSession) -> None:
    async with TestServer(websocket_echo.make_app(), port=0) as server:
        await check_echo_server(session, str(server.make_url("/")))


# -- supervision ------------------------------------------------------------------------------


def test_supervision_example_restarts_the_flaky_worker_and_stops_by_itself() -> None:
    result = run_script(EXAMPLES / "supervision.py", timeout=BOUND)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "crawling"
    assert lines[-1] == "crawler stopped after 12 pages"
    fetched = [line for line in lines if line.startswith("fetched page")]
    restarts = [line for line in lines if line.startswith("restarted after ConnectionError")]
    # Pages 2, 5, 8 and 11 fail (dead letters); the crawler stops once the fetcher handled them all.
    assert fetched == [f"fetched page {page}" for page in (0, 1, 3, 4, 6, 7, 9, 10)]
    assert [line.split("'")[1] for line in restarts] == [
        f"page {page}: connection reset" for page in (2, 5, 8, 11)
    ]


@pytest.mark.asyncio
@pytest.mark.mock_clock
async def test_supervision_example_forever_runs_until_it_is_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--forever``'s crawler, a page every 0.5 s, every third one failing: ten minutes (of the mock
    clock) and 400 restarts later it still runs, under its restart intensity."""
    crawler = supervision.Crawler(ticks=None, interval=0.5)
    await crawler.start()
    await asyncio.sleep(600)
    assert crawler.running
    assert crawler.page >= 1190
    assert sum(line.startswith("restarted after ConnectionError") for line in crawler.log) >= 390
    await crawler.stop()
    assert capsys.readouterr().out.splitlines()[-1] == f"crawler stopped after {crawler.page} pages"


def test_supervision_example_stops_the_whole_tree_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "supervision.py"), "--forever"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "crawling\n"  # running: the signal handlers are in place
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert re.search(r"crawler stopped after \d+ pages\n\Z", out), out
