"""``python -m actorio top`` driven in a real terminal (a pseudo-terminal, through pexpect)
against a running two-process system, each process serving its snapshot endpoint and
answering as a NATS service."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("top_program.py")


@pytest.fixture(scope="module")
def endpoints(nats_url: str) -> Iterator[list[str]]:
    """Two processes, each serving its snapshot and answering as a NATS service."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(PROGRAM), name, nats_url], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for name in ("alpha", "beta")
    ]
    try:
        urls = []
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()  # the program prints its URL once it serves
            assert line.startswith("http://127.0.0.1:"), line
            urls.append(line.strip())
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def _ctrl_c_interrupts() -> None:
    """In the child before exec: SIGINT back to its default. A runner started in the background
    by a shell without job control ignores SIGINT, its children inherit that, and Python then
    never turns Ctrl-C into KeyboardInterrupt: the test would check the runner, not `top`."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_top_shows_both_processes_live_and_stops_on_ctrl_c(endpoints: list[str]) -> None:
    top = pexpect.spawn(
        sys.executable,
        ["-m", "actorio", "top", "--interval", "0.3", *endpoints],
        cwd=str(ROOT),
        dimensions=(40, 150),
        encoding="utf-8",
        timeout=30,
        preexec_fn=_ctrl_c_interrupts,
    )
    try:
        for name in ("alpha", "beta"):
            top.expect(name)
        top.expect("worker-0")
        # A refresh after the first: the dispatcher's periodic load gives a rate (x.y messages/s).
        top.expect(re.compile(r"worker-1\s+Worker\s+\d+\s+\d+\.\d"))
        top.sendintr()
        top.expect(pexpect.EOF)
    finally:
        top.close(force=True)
    assert top.exitstatus == 0


def test_top_once_prints_one_view(endpoints: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "actorio", "top", "--once", *endpoints],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "alpha" in result.stdout
    assert "beta" in result.stdout
    assert "Dispatcher" in result.stdout


def test_top_says_when_an_endpoint_cannot_be_read() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "actorio", "top", "--once", "http://127.0.0.1:9/snapshot"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "cannot read http://127.0.0.1:9/snapshot" in result.stdout


def test_top_lists_every_node_on_a_nats_server(endpoints: list[str], nats_url: str) -> None:
    top = pexpect.spawn(
        sys.executable,
        ["-m", "actorio", "top", "--interval", "0.3", nats_url],
        cwd=str(ROOT),
        dimensions=(30, 150),
        encoding="utf-8",
        timeout=30,
        preexec_fn=_ctrl_c_interrupts,
    )
    try:
        top.expect("2 nodes on")
        # Each node's published actor, its class, and its figures from $SRV.STATS.
        top.expect(re.compile(r"(alpha|beta)\s+Dispatcher\s+\d+\s+[1-9]\d*"))
        top.sendintr()
        top.expect(pexpect.EOF)
    finally:
        top.close(force=True)
    assert top.exitstatus == 0


def test_the_service_view_draws_at_most_max_rows() -> None:
    """Any service on the server may answer for actorio, with any number of endpoints (100,000
    empty ones fit in 300 kB: drawing them all took half a minute and 600 MB). The view draws
    `MAX_ROWS` rows in all, and counts the rest."""
    from rich.console import Console

    from actorio.telemetry._top import MAX_ROWS, render_services

    def node(name: str, actors: int) -> tuple[dict[str, Any], dict[str, Any]]:
        endpoints = [{"name": f"{name}-{n}"} for n in range(actors)]
        return {"id": name, "endpoints": []}, {"id": name, "endpoints": endpoints}

    def drawn(nodes: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(render_services(nodes, "nats://x"))
        return console.export_text()

    shown = drawn([node("evil", 100_000), node("real", 1)])
    assert len(shown.splitlines()) <= MAX_ROWS + 3, len(shown.splitlines())
    assert re.search(r"real\s+real-0\s", shown), shown[-500:]  # the flood hides no other node
    assert f"... and {100_000 - (MAX_ROWS - 1)} more actors" in shown
    # Rows are left out only past MAX_ROWS: two nodes that fit are drawn whole.
    shown = drawn([node("a", 5), node("b", 1_500), node("c", 0)])
    assert "more actors" not in shown
    assert "b-1499" in shown
    assert re.search(r"c\s+-", shown)
    # A node whose stats cannot be read is one row; none of its actors is drawn, all counted.
    broken = node("broken", 30)
    broken[1]["endpoints"][7]["data"] = 5
    shown = drawn([broken, node("fine", 2)])
    assert re.search(r"broken\s+\?\s+cannot read its stats", shown)
    assert "fine-1" in shown
    assert "... and 30 more actors" in shown
    # Many small fake nodes (sorting first) take no row from a real one.
    shown = drawn([*(node(f"!fake{n:03}", 20) for n in range(100)), node("real", 3)])
    assert "real-2" in shown
    assert "more actors" in shown  # 2,003 rows: some fake ones left out
    # A responder's long texts are cut: the real node's figures stay on an 80-column screen.
    wide = node("w" * 200, 1)
    wide[1]["endpoints"][0]["name"] = "n" * 200
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render_services([wide, node("real", 1)], "nats://x"))
    shown = console.export_text()
    assert re.search(r"real\s+real-0\s+\S*\s+\S+\s+\S+\s+\S+\s+\S+", shown), shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_a_node_with_malformed_stats_is_one_row_not_the_whole_view(
    endpoints: list[str], nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service on the server answering ``$SRV.INFO``/``$SRV.STATS`` for actorio with fields of
    the wrong types takes one row that says so; the real nodes are still listed."""
    import asyncio
    import json
    import threading

    import nats
    from nats.aio.msg import Msg

    ready, done = threading.Event(), threading.Event()

    async def impostor() -> None:
        client = await nats.connect(nats_url)
        replies = {
            "INFO": {"id": "impostor", "endpoints": [{"name": "x", "metadata": "not a dict"}]},
            "STATS": {"id": "impostor", "endpoints": [7]},
        }
        for verb, body in replies.items():

            async def answer(msg: Msg, body: object = body) -> None:
                await msg.respond(json.dumps(body).encode())

            await client.subscribe(f"$SRV.{verb}.actorio", cb=answer)
        await client.flush()
        ready.set()
        await asyncio.to_thread(done.wait, 60)  # until the test has read the view
        await client.close()

    monkeypatch.setenv("COLUMNS", "200")  # the view's width: no cell cut
    thread = threading.Thread(target=asyncio.run, args=(impostor(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        for _ in range(30):  # a view gathers replies for 0.3 s: a busy machine may need more than one
            status, shown = _once(nats_url)
            if "3 nodes on" in shown:
                break
    finally:
        done.set()
        thread.join(20)
    assert status == 0
    assert "3 nodes on" in shown
    assert re.search(r"impostor\s+\?\s+cannot read its stats \(AttributeError\)", shown), shown
    assert re.search(r"\s+alpha\s+Dispatcher\s", shown), shown
    assert re.search(r"\s+beta\s+Dispatcher\s", shown), shown


# -- a hostile snapshot endpoint ------------------------------------------------------------------


def _node(identifier: object, **fields: object) -> dict[str, object]:
    return {"identifier": identifier, "actor_class": "m.Worker", "queued": 0, "handled": 1, **fields}


_ESCAPES = "\x1b[2J\x1b]0;TITLE\x07\x1b]8;;http://evil\x07CLICK\r\nFORGED\x00\u202e"
_HOSTILE: dict[str, object] = {
    "escapes": {
        "time": 1.0,
        "process": {"pid": _ESCAPES, "host": _ESCAPES},
        "dead_letters": _ESCAPES,
        "tree": _node("id" + _ESCAPES, actor_class="m." + _ESCAPES, handling=_ESCAPES, queued=_ESCAPES),
    },
    "markup": {"time": 1.0, "tree": _node("[link=http://evil.example]click[/link] [/nope]")},
    "children": {"time": 1.0, "tree": _node("r", children=5)},
    "time": {"time": "yesterday", "tree": _node("r")},
    "process": {"time": 1.0, "process": [1, 2], "tree": _node("r")},
    "many": {"time": 1.0, "tree": _node("root", children=[{"identifier": f"w{i}"} for i in range(5000)])},
}


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """An HTTP endpoint serving snapshots made to break a terminal (``/<case>``), one that sends a
    byte every half second (``/trickle``), and one that sends a header line every half second
    (``/headers``)."""
    import http.server
    import json
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/headers":  # a header line every half second, no end
                self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                for _ in range(40):
                    self.wfile.write(b"X-Slow: 1\r\n")
                    self.wfile.flush()
                    time.sleep(0.5)
                return
            self.send_response(200)
            self.end_headers()
            if self.path == "/trickle":
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
                return
            self.wfile.write(json.dumps(_HOSTILE[self.path.strip("/")]).encode())

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the trickle's reader gave up: its broken pipe is expected

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _once(url: str) -> tuple[int, str]:
    import io

    from actorio.telemetry._top import run_top

    out = io.StringIO()
    status = run_top([url], once=True, out=out)
    return status, out.getvalue()


def test_a_snapshot_cannot_drive_the_terminal(hostile: str) -> None:
    """Snapshot text is shown, escaped: no escape sequence, newline, NUL or bidi override of a
    snapshot reaches the terminal, and Rich markup in it is shown as text, not applied."""
    status, shown = _once(f"{hostile}/escapes")
    assert status == 0
    for raw in ("\x1b", "\x07", "\x00", "\u202e", "\r", "FORGED\n"):
        assert raw not in shown, repr(raw)
    assert "\\x1b[2J" in shown
    status, shown = _once(f"{hostile}/markup")
    assert status == 0
    assert "[link=http://evil.example]click[/link] [/nope]" in shown


@pytest.mark.parametrize("case", ["children", "time", "process"])
def test_a_malformed_snapshot_is_said_not_raised(hostile: str, case: str) -> None:
    status, shown = _once(f"{hostile}/{case}")
    assert status == 1
    assert f"cannot read {hostile}/{case}" in shown


def test_a_slow_endpoint_is_given_up_and_a_large_tree_is_cut(hostile: str) -> None:
    import time

    from actorio.telemetry._top import MAX_ROWS, fetch

    started = time.monotonic()
    with pytest.raises(OSError, match="took more than"):
        fetch(f"{hostile}/trickle", timeout=1.0)
    assert time.monotonic() - started < 10
    # Headers that never end: each line resets a socket's own timeout, the fetch's time does not.
    started = time.monotonic()
    with pytest.raises(OSError, match="took more than"):
        fetch(f"{hostile}/headers", timeout=1.0)
    with pytest.raises(OSError, match="still waiting"):  # no second thread for that URL meanwhile
        fetch(f"{hostile}/headers", timeout=1.0)
    assert time.monotonic() - started < 10
    status, shown = _once(f"{hostile}/many")
    assert status == 0
    assert f"and {5001 - MAX_ROWS} more actors" in shown


def test_counts_that_went_down_give_no_rate() -> None:
    """An actor's counts are its incarnation's: after a restart they start again, and the view
    shows no rate rather than a negative one."""
    import io

    from rich.console import Console

    from actorio.telemetry._top import render

    def document(time: float, handled: int) -> dict[str, Any]:
        node = _node("worker", actor_class="app.Worker", handled=handled, handler_seconds=handled / 1000)
        return {"time": time, "tree": node}

    out = io.StringIO()
    console = Console(file=out, width=160)
    console.print(render(document(11.0, 8), document(10.0, 500), "http://x"))
    console.print(render(document(12.0, 58), document(11.0, 8), "http://x"))
    shown = out.getvalue()
    assert "-492" not in shown
    assert "50.0" in shown  # the next refresh has a rate again
