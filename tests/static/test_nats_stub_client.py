"""A remote client typed only against a generated protocol stub, checked by mypy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.nats_support.processes import ROOT

STUB_CLIENT = """
from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import assert_type

from actorio import ask
from actorio.nats import Node

if TYPE_CHECKING:
    from hello_world_client import Greet, GreeterRef, Greeting, Stop


async def client(node: Node, greet: Greet, stop: Stop) -> str:
    greeter: GreeterRef = node.ref("greeter")
    reply = await ask(greeter, greet)
    assert_type(reply, Greeting)
    await greeter.tell(stop)
    return reply.text
"""

STUB_MISUSE = """
from __future__ import annotations

from typing import TYPE_CHECKING

from actorio import ask
from actorio.nats import Node

if TYPE_CHECKING:
    from hello_world_client import Greeting, GreeterRef


async def client(node: Node, greeting: Greeting) -> None:
    greeter: GreeterRef = node.ref("greeter")
    await greeter.tell(greeting)
    await ask(greeter, greeting)
"""


@pytest.mark.static
@pytest.mark.timeout(120)
def test_a_client_typed_only_against_a_generated_stub(tmp_path: Path, strict_plugin_mypy_cache: Path) -> None:
    """mypy checks a remote client that imports only the stub: a right one passes, a message
    outside the protocol is an error (the stub is regenerated here, so it is current)."""
    stubs = tmp_path / "stubs"
    subprocess.run(
        [sys.executable, "-m", "actorio", "stubs", "--path", "examples", "hello_world", "-o", str(stubs)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (tmp_path / "good_client.py").write_text(STUB_CLIENT)
    (tmp_path / "bad_client.py").write_text(STUB_MISUSE)
    config = tmp_path / "mypy.ini"
    config.write_text(
        textwrap.dedent(
            f"""\
            [mypy]
            strict = True
            mypy_path = {stubs}:{ROOT}
            plugins = actorio.mypy
            cache_dir = {strict_plugin_mypy_cache}
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "good_client.py", "bad_client.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if line.startswith("good_client.py")], result.stdout
    bad_lines = {int(line.split(":")[1]) for line in errors if line.startswith("bad_client.py")}
    assert bad_lines == {15, 16}, result.stdout
