"""``python -m actorio top`` driven in a real terminal (a pseudo-terminal, through pexpect)
against a running two-process system, each process serving its snapshot endpoint and
answering as a NATS service."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
