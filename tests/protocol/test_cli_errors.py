"""``python -m actorio``: an output it cannot write is a one-line error and exit status 1, like the
command's other errors, never a traceback.

The outputs: ``stubs -o DIR`` (a directory created with its missing parents, then one file per
module) and standard output (``schema``, ``inspect``, ``stubs`` without ``-o``, and the ``wrote``
lines). Permission cases need a directory in which nothing can be created even by root, which
these tests may run as: a read-only place of the system such as ``/sys``.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from actorio._cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PREFIX = "python -m actorio: error: "


def stubs_to(output: Path | str) -> list[str]:
    return ["stubs", "--path", str(EXAMPLES), "hello_world", "-o", str(output)]


def fails_with(argv: list[str], capsys: pytest.CaptureFixture[str], out: io.StringIO | None = None) -> str:
    """Run the command in this process; it must fail with one line on stderr: return that line."""
    assert main(argv, out if out is not None else io.StringIO()) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith(PREFIX), stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.endswith("\n"), stderr
    return stderr[len(PREFIX) : -1]


def run_module(
    argv: list[str], stdout: int | None = subprocess.PIPE, environment: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorio", *argv],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], error: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"{PREFIX}{error}\n"


@pytest.fixture
def unwritable_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory in which this process can create nothing: a read-only directory if the process
    is not root (root ignores permissions), else one of the system's that refuse new entries."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for candidate in (locked, Path("/sys/kernel"), Path("/sys"), Path("/proc")):
            probe = candidate / "actorio-probe"
            try:
                probe.mkdir()
            except OSError:
                if candidate.is_dir():
                    yield candidate
                    return
            else:
                probe.rmdir()
        pytest.skip("no directory here refuses new entries")
    finally:
        locked.chmod(0o755)


# -- stubs -o DIR ----------------------------------------------------------------------------------


def test_an_existing_file_as_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "stubs.pyi"
    existing.write_text("kept\n")
    assert fails_with(stubs_to(existing), capsys) == f"-o {existing} is not a directory"
    assert existing.read_text() == "kept\n"


def test_a_file_used_as_a_parent_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    output = tmp_path / "file" / "stubs"
    assert fails_with(stubs_to(output), capsys) == f"cannot create the directory {output}: Not a directory"


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    output = tmp_path / "missing" / "parents" / "stubs"
    out = io.StringIO()
    assert main(stubs_to(output), out) == 0
    assert out.getvalue() == f"wrote {output / 'hello_world_client.pyi'}\n"
    assert (output / "hello_world_client.pyi").read_text().startswith('"""Typed client')


def test_a_directory_that_cannot_be_created(
    unwritable_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = unwritable_directory / "actorio-stubs" / "nested"
    error = fails_with(stubs_to(output), capsys)
    # The first directory that could not be created, and why.
    assert error.startswith(f"cannot create the directory {unwritable_directory / 'actorio-stubs'}: "), error
    assert not output.parent.exists()


def test_a_directory_that_takes_no_new_file(
    unwritable_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = fails_with(stubs_to(unwritable_directory), capsys)
    assert error.startswith(f"cannot write {unwritable_directory / 'hello_world_client.pyi'}: "), error


def test_a_directory_where_the_stub_file_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello_world_client.pyi").mkdir()
    error = fails_with(stubs_to(tmp_path), capsys)
    assert error == f"cannot write {tmp_path / 'hello_world_client.pyi'}: Is a directory"


def test_from_the_command_line_each_is_one_line_and_status_1(
    tmp_path: Path, unwritable_directory: Path
) -> None:
    existing = tmp_path / "stubs.pyi"
    existing.write_text("")
    assert_one_line_error(run_module(stubs_to(existing)), f"-o {existing} is not a directory")
    result = run_module(stubs_to(unwritable_directory / "actorio-stubs"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"{PREFIX}cannot create the directory {unwritable_directory}")
    assert result.stderr.count("\n") == 1, result.stderr
    result = run_module(stubs_to(unwritable_directory))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"{PREFIX}cannot write {unwritable_directory / 'hello_world_client.pyi'}")
    assert result.stderr.count("\n") == 1, result.stderr


# -- standard output -------------------------------------------------------------------------------


class FullOutput(io.StringIO):
    """An output whose every write fails as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


COMMANDS = [
    pytest.param(["schema", "--path", str(EXAMPLES), "hello_world:Greeter"], id="schema"),
    pytest.param(["inspect", "--path", str(EXAMPLES), "hello_world:Greeter"], id="inspect"),
    pytest.param(["stubs", "--path", str(EXAMPLES), "hello_world"], id="stubs"),
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_an_output_that_cannot_be_written(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    error = fails_with(argv, capsys, FullOutput())
    assert error == f"cannot write to standard output: {os.strerror(errno.ENOSPC)}"


def test_the_wrote_lines_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = fails_with(stubs_to(tmp_path), capsys, FullOutput())
    assert error == f"cannot write to standard output: {os.strerror(errno.ENOSPC)}"


def _environment(buffered: bool) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if not buffered:
        environment["PYTHONUNBUFFERED"] = "1"
    return environment


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", COMMANDS)
def test_a_closed_pipe_from_the_command_line(argv: list[str], buffered: bool) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: every write fails with EPIPE
    try:
        result = run_module(argv, stdout=writer, environment=_environment(buffered))
    finally:
        os.close(writer)
    assert_one_line_error(result, f"cannot write to standard output: {os.strerror(errno.EPIPE)}")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_full_device_from_the_command_line(buffered: bool) -> None:
    with Path("/dev/full").open("w") as full:
        result = run_module(
            ["inspect", "--path", str(EXAMPLES), "hello_world:Greeter"],
            stdout=full.fileno(),
            environment=_environment(buffered),
        )
    assert_one_line_error(result, f"cannot write to standard output: {os.strerror(errno.ENOSPC)}")
