"""``python -m actorio``: schema, inspect and stubs, and their one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from actorio._cli import main, render_stub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import actor_spawning  # noqa: E402
import hello_world  # noqa: E402
import websocket_json  # noqa: E402


def run(*argv: str) -> str:
    out = io.StringIO()
    assert main(list(argv), out) == 0
    return out.getvalue()


def run_module(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorio", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_schema_prints_the_protocol_s_json_schema() -> None:
    printed = run("schema", "--path", str(EXAMPLES), "hello_world:Greeter")
    assert json.loads(printed) == hello_world.Greeter.protocol.json_schema()
    assert printed.startswith('{\n  "$schema": ')


def test_inspect_prints_a_table() -> None:
    assert run("inspect", "websocket_json:Session") == (
        "websocket_json.Session: 3 message types (its Actor[...] argument)\n"
        "\n"
        "wire name  message class         handler        reply type\n"
        "---------  --------------------  -------------  ---------------------\n"
        "echo       websocket_json.Echo   Session.echo   websocket_json.Echoed\n"
        "add        websocket_json.Add    Session.add    websocket_json.Total\n"
        "close      websocket_json.Close  Session.close  None\n"
    )


def test_inspect_an_untyped_actor() -> None:
    assert run("inspect", "websocket_echo:Client") == (
        "websocket_echo.Client: 0 message types (untyped: the message types its @handles handlers take)\n"
        "\n"
        "wire name  message class  handler  reply type\n"
        "---------  -------------  -------  ----------\n"
    )


def test_stubs_prints_or_writes_one_stub_per_module(tmp_path: Path) -> None:
    assert run("stubs", "hello_world") == render_stub("hello_world", [hello_world.Greeter])
    assert run("stubs", "actor_spawning:Worker") == render_stub("actor_spawning", [actor_spawning.Worker])
    printed = run("stubs", "actor_spawning:Manager", "actor_spawning", "websocket_json", "-o", str(tmp_path))
    assert printed == (
        f"wrote {tmp_path / 'actor_spawning_client.pyi'}\nwrote {tmp_path / 'websocket_json_client.pyi'}\n"
    )
    expected = render_stub("actor_spawning", [actor_spawning.Manager, actor_spawning.Worker])
    assert (tmp_path / "actor_spawning_client.pyi").read_text() == expected
    expected = render_stub("websocket_json", [websocket_json.Session])
    assert (tmp_path / "websocket_json_client.pyi").read_text() == expected


def test_the_module_entry_point_runs_from_the_command_line() -> None:
    result = run_module("inspect", "--path", "examples", "hello_world:Greeter")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "hello_world.Greeter: 2 message types (its Actor[...] argument)"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["schema", "no_such_module:Actor"], "no module named 'no_such_module'"),
        (["inspect", "hello_world:Nope"], "'hello_world' has no attribute 'Nope'"),
        (
            ["inspect", "hello_world:Greet"],
            "hello_world:Greet is not an actor class (an actorio.Actor subclass)",
        ),
        (
            ["schema", "hello_world:main"],
            "hello_world:main is not an actor class (an actorio.Actor subclass)",
        ),
        (["schema", "hello_world"], "expected module:Actor, got 'hello_world'"),
        (["stubs", "json"], "module 'json' defines no actor class"),
        (["stubs", "hello_world", "websocket_json"], "stubs of several modules need -o DIR"),
        (
            ["schema", "broken_module:Actor"],
            "importing 'broken_module' failed: ModuleNotFoundError: No module named",
        ),
        (
            ["schema", "failing_module:Actor"],
            "importing 'failing_module' failed: ZeroDivisionError: division by zero",
        ),
    ],
)
def test_an_error_prints_one_line_and_exits_non_zero(
    tmp_path: Path, argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken_module.py").write_text("import no_such_dependency_of_broken_module\n")
    (tmp_path / "failing_module.py").write_text("1 / 0\n")
    out = io.StringIO()
    assert main([*argv, "--path", str(tmp_path)], out) == 1  # examples/ is on sys.path already
    assert out.getvalue() == ""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"python -m actorio: error: {error}")


def test_an_error_from_the_command_line_is_one_line_and_status_1() -> None:
    result = run_module("schema", "--path", "examples", "hello_world:Greet")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "python -m actorio: error: hello_world:Greet is not an actor class (an actorio.Actor subclass)\n"
    )
