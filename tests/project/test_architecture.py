"""The layering written down in docs/architecture.md, enforced on the source.

Every import of every module of the package is read from its syntax tree (imports under
``if TYPE_CHECKING:`` are for annotations and are not counted; imports inside functions are).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "actorio"

LAYERS: dict[str, int] = {
    "_lazy": 0,
    "_log_limit": 0,
    "_exceptions": 0,
    "_dead_letters": 0,
    "_types": 0,
    "_alarms": 0,
    "_propagation": 0,
    "_transport": 0,
    "_sender": 1,
    "_message": 1,
    "_watch": 1,
    "_dispatch": 2,
    "_protocol": 3,
    "_finite": 3,
    "_ask": 4,
    "_mailbox": 4,
    "_ref": 5,
    "_timers": 6,
    "_inputs": 6,
    "_supervision": 6,
    "_supervisor": 6,
    "_incarnation": 6,
    "_statistics": 6,
    "_actor": 6,
    "_run": 7,
    "_gc_policy": 7,
    "__init__": 8,
    "lowlevel": 8,
    "_compat": 8,
    "actor": 8,
    "errors": 8,
    "messaging": 8,
    "reference": 8,
}
"""The core's modules by layer (docs/architecture.md): a module imports only its layer and below."""

UPWARD_EXCEPTIONS = {("_supervisor", "_actor")}
"""Imports of a higher layer, inside a function, to break a cycle (rule 5)."""

ON_TOP = {"_cli", "__main__", "mypy", "compat", "_schema_diff", "asyncapi"}
"""Top-level modules that are not the core: the command line, the mypy plugin, and the protocol
tools the command line runs (compatibility between versions, the AsyncAPI export)."""

CORE_PRIVATE_ATTRIBUTES = {"_accepts", "_check", "_outside", "_message_types", "_tell_when_room"}
"""Private attributes of core objects (besides the ``_actor_*`` slots) that nothing outside the
core may read."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, dotted (``actorio._ref``)."""
    target: str
    """The imported module, dotted and absolute (``actorio._ask``)."""
    names: tuple[str, ...]
    """The names imported from it (``from x import a, b``), empty for ``import x``."""
    line: int


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _package_of(path: Path) -> str:
    dotted = _dotted(path)
    return dotted if path.name == "__init__.py" else dotted.rsplit(".", 1)[0]


def _imports(path: Path) -> list[Import]:
    module = _dotted(path)
    package = _package_of(path)
    found: list[Import] = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            base_dir = PACKAGE.parent.joinpath(*target.split("."))
            modules = [n for n in names if (base_dir / f"{n}.py").exists() or (base_dir / n).is_dir()]
            # ``from . import _incarnation``: a module of that package; ``from .. import Actor``: a name.
            found.extend(Import(module, f"{target}.{name}", (), node.lineno) for name in modules)
            rest = tuple(n for n in names if n not in modules)
            if rest or not modules:
                found.append(Import(module, target, rest, node.lineno))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _core(path: Path) -> str | None:
    """The core module name (``_ref``) of a path, or None for testing, nats, the CLI, the plugin."""
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) != 1 or relative.stem in ON_TOP:
        return None
    return relative.stem


def _in(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def test_every_core_module_has_a_layer() -> None:
    core = {name for path in _modules() if (name := _core(path)) is not None}
    assert core == set(LAYERS), "update LAYERS and docs/architecture.md"


def test_every_module_opens_with_a_docstring_saying_what_it_owns() -> None:
    missing = [
        str(p.relative_to(PACKAGE)) for p in _modules() if ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert not missing


@pytest.mark.parametrize("path", [p for p in _modules() if _core(p) is not None], ids=lambda p: p.stem)
def test_the_core_imports_its_own_layer_and_below(path: Path) -> None:
    name = _core(path)
    assert name is not None
    wrong: list[str] = []
    for found in _imports(path):
        if not _in(found.target, "actorio"):
            continue
        target = found.target.split(".")
        if len(target) > 2 or (len(target) == 2 and target[1] not in LAYERS):
            wrong.append(f"line {found.line}: {found.target} (the core never imports it)")
            continue
        below = LAYERS["__init__"] if len(target) == 1 else LAYERS[target[1]]
        if below > LAYERS[name] and (name, target[-1]) not in UPWARD_EXCEPTIONS:
            wrong.append(f"line {found.line}: {found.target} (layer {below} above {LAYERS[name]})")
    assert not wrong, f"{name}: " + "; ".join(wrong)


def test_the_core_never_imports_testing_nats_the_cli_or_the_plugin() -> None:
    wrong = [
        f"{found.module} line {found.line}: {found.target}"
        for path in _modules()
        if _core(path) is not None
        for found in _imports(path)
        if any(
            _in(found.target, f"actorio.{top}")
            for top in (
                "testing",
                "nats",
                "persistence",
                "telemetry",
                "_cli",
                "__main__",
                "mypy",
                "compat",
                "asyncapi",
            )
        )
    ]
    assert not wrong


def test_the_mypy_plugin_imports_nothing_of_actorio() -> None:
    wrong = [found.target for found in _imports(PACKAGE / "mypy.py") if _in(found.target, "actorio")]
    assert not wrong


@pytest.mark.parametrize("package", ["testing", "nats", "persistence", "telemetry"])
def test_extensions_use_only_the_public_names_and_the_lowlevel_seam(package: str) -> None:
    """No private module of the core, no underscore name of it, no private attribute of its objects."""
    wrong: list[str] = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        for found in _imports(path):
            if _in(found.target, f"actorio.{package}") or not _in(found.target, "actorio"):
                continue
            if found.target not in ("actorio", "actorio.lowlevel", "actorio._lazy"):
                wrong.append(f"{where}:{found.line} imports {found.target}")
            private = [n for n in found.names if n.startswith("_")]  # actorio._lazy: packaging only
            if private:
                wrong.append(f"{where}:{found.line} imports {', '.join(private)} from {found.target}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and (
                node.attr.startswith("_actor_") or node.attr in CORE_PRIVATE_ATTRIBUTES
            ):
                wrong.append(f"{where}:{node.lineno} reads .{node.attr}")
    assert not wrong


def test_testing_and_nats_do_not_import_each_other() -> None:
    wrong = [
        f"{found.module} line {found.line}: {found.target}"
        for package, other in (("testing", "nats"), ("nats", "testing"))
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for found in _imports(path)
        if _in(found.target, f"actorio.{other}")
    ]
    assert not wrong


def test_persistence_imports_neither_the_test_kit_nor_nats_and_neither_imports_it() -> None:
    """actorio.persistence stands beside the test kit and NATS: its JetStream journal uses nats-py
    itself. Neither the test kit nor NATS imports persistence."""
    wrong = [
        f"{found.module} line {found.line}: {found.target}"
        for package, other in (
            ("persistence", "testing"),
            ("persistence", "nats"),
            ("testing", "persistence"),
            ("nats", "persistence"),
        )
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for found in _imports(path)
        if _in(found.target, f"actorio.{other}")
    ]
    assert not wrong


def test_no_module_is_longer_than_about_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 620
    }
    assert not long


def test_the_rules_are_checked_against_something() -> None:
    """The checks above read real imports: a guard against a parser that finds none."""
    targets = {found.target for found in _imports(PACKAGE / "_ref.py")}
    assert "actorio._ask" in targets
    assert not any(_in(t, "actorio._actor") for t in targets)  # only under TYPE_CHECKING there
    assert "actorio._incarnation" in {found.target for found in _imports(PACKAGE / "_actor.py")}


@pytest.mark.parametrize("package", ["testing", "nats", "persistence"])
def test_extensions_switch_off_no_private_name_check_wholesale(package: str) -> None:
    """A file-wide ``reportPrivateUsage=false`` would hide what rule 3 forbids."""
    waived = [
        str(path.relative_to(PACKAGE))
        for path in sorted((PACKAGE / package).rglob("*.py"))
        if "reportPrivateUsage=false" in path.read_text()
    ]
    assert not waived


def test_telemetry_imports_neither_testing_nor_nats_and_they_do_not_import_it() -> None:
    """Observability stands beside the test kit and the NATS layer: each reaches the other only
    through the hooks of ``actorio.lowlevel``."""
    wrong = [
        f"{found.module} line {found.line}: {found.target}"
        for package, others in (
            ("telemetry", ("testing", "nats")),
            ("testing", ("telemetry",)),
            ("nats", ("telemetry",)),
        )
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for found in _imports(path)
        if any(_in(found.target, f"actorio.{other}") for other in others)
    ]
    assert not wrong
