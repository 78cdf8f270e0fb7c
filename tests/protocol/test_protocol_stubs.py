"""Typed client stubs: the committed stubs/ are current, type a client with mypy, and the stub writer
spells fields, replies and references as mypy reads them."""

from __future__ import annotations

import ast
import enum
import io
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

from actorio import Actor, DataMessage, Message, handles
from actorio._cli import main, render_stub

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / "stubs"
EXAMPLE_MODULES = ["hello_world", "actor_spawning", "websocket_json"]
REGENERATE = f"python -m actorio stubs --path examples {' '.join(EXAMPLE_MODULES)} -o stubs"


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    assert (
        main(
            ["stubs", "--path", str(ROOT / "examples"), *EXAMPLE_MODULES, "-o", str(tmp_path)], io.StringIO()
        )
        == 0
    )
    generated = {path.name: path.read_text() for path in tmp_path.glob("*.pyi")}
    committed = {path.name: path.read_text() for path in STUBS.glob("*_client.pyi")}
    assert sorted(generated) == sorted(committed), (
        f"stubs/ holds other client stubs: regenerate with `{REGENERATE}`"
    )
    for name, text in generated.items():
        assert committed[name] == text, f"stubs/{name} is stale: regenerate with `{REGENERATE}`"


CLIENT = """\
from typing_extensions import assert_type

from actorio import ask
from actor_spawning_client import Compute, ManagerRef, Result, WorkerRef
from hello_world_client import Greet, GreeterRef, Greeting, Stop
from websocket_json_client import Add, Close, Echo, Echoed, SessionRef, Total


async def client(greeter: GreeterRef, manager: ManagerRef, worker: WorkerRef, session: SessionRef) -> None:
    assert_type(await ask(greeter, Greet(name="World")), Greeting)
    await greeter.tell(Stop())
    assert_type(await ask(manager, Compute()), Result)
    assert_type(await ask(worker, Compute()), Result)
    assert_type(await ask(session, Echo(text="x")), Echoed)
    assert_type(await ask(session, Add(value=1)), Total)
    await session.tell(Close())
    assert_type(Echo.wire_name, str)

    # Outside the protocol, or the wrong fields: each line must be an error.
    await greeter.tell(Compute())  # type: ignore[arg-type]
    await ask(session, Greet(name="x"))  # type: ignore[arg-type]
    Greet()  # type: ignore[call-arg]
    Add(value="one")  # type: ignore[arg-type]
    as_session: SessionRef = greeter  # type: ignore[assignment]
"""


@pytest.mark.static
def test_the_stubs_type_a_client_that_imports_only_them(tmp_path: Path) -> None:
    """The client imports the stub modules and actorio, never the examples: mypy (strict,
    ``warn_unused_ignores``) must accept the right uses and flag each wrong one."""
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\nwarn_unused_ignores = True\nwarn_unreachable = True\n"
        f"mypy_path = {STUBS}\ncache_dir = {ROOT / '.mypy_cache' / 'protocol-stubs'}\n"
    )
    # Run from the repository root so that mypy finds actorio (its editable install is an import
    # hook, which mypy does not follow); examples/ is not on its path, so the client cannot reach it.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            str(tmp_path / "client.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the stub writer ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int


class Base(Message[int]):
    wire_name: ClassVar[str] = "base"
    size: int = 1


class Derived(Base):
    label: Annotated[str, Field(min_length=1)]
    renamed: int = Field(alias="renamedField")


class Shapes(Message[list[Point] | None]):
    points: list[Point]
    colors: dict[str, Color] = Field(default_factory=dict)
    mode: Literal["a", 3, Color.RED] = "a"
    when: datetime | None = None
    nested: tuple[int, ...] = ()
    items: Sequence[Base] = ()
    payload: DataMessage[int] | None = None
    anything: Any = None


class Edge(Actor[Derived | Shapes]):
    @handles(Derived)
    async def derived(self, msg: Derived) -> int:
        return 1

    @handles(Shapes)
    async def shapes(self, msg: Shapes) -> list[Point] | None:
        return None


class Loose(Actor):
    @handles(Base)
    async def base(self, msg: Base) -> int:
        return 1


EXPECTED_STUB = f'''"""Typed client of the actors of `{__name__}`: Edge, Loose.

Generated from {__name__} by `python -m actorio stubs`: do not edit, regenerate. It declares the
messages these actors accept and reply with, and a reference type per actor, so that code holding a
reference is type-checked against the actor's protocol without importing {__name__}.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import Field
from {__name__} import Color, Point

from actorio import ActorRef, DataMessage, Message

class Base(Message[int]):
    """Wire name: "base". Reply: int."""

    wire_name: ClassVar[str] = "base"
    size: int = ...

class Derived(Base):
    """Wire name: "Derived". Reply: int."""

    label: str
    renamed: int = Field(alias="renamedField")

class Shapes(Message[list[Point] | None]):
    """Wire name: "Shapes". Reply: list[Point] | None."""

    points: list[Point]
    colors: dict[str, Color] = ...
    mode: Literal["a", 3, Color.RED] = ...
    when: datetime | None = ...
    nested: tuple[int, ...] = ...
    items: Sequence[Base] = ...
    payload: DataMessage[int] | None = ...
    anything: Any = ...

EdgeProtocol: TypeAlias = Derived | Shapes
"""The messages Edge accepts."""

EdgeRef: TypeAlias = ActorRef[Derived | Shapes]
"""A reference to {__name__}.Edge."""

LooseProtocol: TypeAlias = Message[Any]
"""The messages Loose accepts."""

LooseRef: TypeAlias = ActorRef[Message[Any]]
"""A reference to {__name__}.Loose."""
'''


def test_the_stub_spells_fields_defaults_aliases_bases_and_replies() -> None:
    text = render_stub(__name__, [Edge, Loose])
    assert text == EXPECTED_STUB
    ast.parse(text)


def test_a_name_used_twice_in_one_stub_is_an_error() -> None:
    from actorio._cli import CommandError

    class Point(Message):  # the same name as this module's Point model, used by Shapes
        pass

    class Twice(Actor[Shapes | Point]):
        @handles(Shapes, Point)
        async def any_(self, msg: Shapes | Point) -> None:
            pass

    with pytest.raises(CommandError, match="two types named 'Point' in one stub"):
        render_stub(__name__, [Twice])


def test_a_type_defined_in_a_function_cannot_be_imported_by_a_stub() -> None:
    from actorio._cli import CommandError

    class Local(BaseModel):
        x: int

    class Carrier(Message):
        local: Local

    class Holder(Actor[Carrier]):
        @handles(Carrier)
        async def carry(self, msg: Carrier) -> None:
            pass

    with pytest.raises(CommandError, match="cannot be imported in a stub"):
        render_stub(__name__, [Holder])
