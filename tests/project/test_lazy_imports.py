"""The public packages import their names on first use (PEP 562 module ``__getattr__``).

``import actorio`` loads neither the runtime nor pydantic, nor does the mypy plugin, which mypy
imports for every run; the pytest plugin, which pytest imports in every project that has actorio
installed, does not either. Each package keeps one table, name -> defining module, that its
``__getattr__`` reads; its ``if TYPE_CHECKING:`` imports (what type checkers read) and its
``__all__`` must name exactly the same things, which is checked here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import pytest

import actorio
import actorio.nats
import actorio.persistence
import actorio.testing

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [actorio, actorio.nats, actorio.persistence, actorio.testing]

# actorio._lazy is the lazy namespace itself (importlib and sys only), not the runtime.
# Third-party modules that only the runtime needs.
RUNTIME_DEPENDENCIES = {"pydantic", "pydantic_core"}


def _new_modules(setup: str, statement: str) -> list[str]:
    """The modules that ``statement`` loads, in a fresh interpreter that ran ``setup`` first."""
    code = (
        f"import json, sys\n{setup}\nbefore = set(sys.modules)\n{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout)
    return modules


def _actorio_modules(modules: list[str]) -> set[str]:
    return {name for name in modules if name == "actorio" or name.startswith("actorio.")}


def _top_level(modules: list[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_the_mypy_plugin_loads_neither_the_runtime_nor_pydantic() -> None:
    # mypy imports a plugin once its own modules are loaded (mypy.build loads the plugins); a
    # compiled mypy cannot import some of them first (``import mypy.maptype`` alone fails on
    # mypy's own import cycle), so the plugin is imported after mypy.build, as in a mypy run.
    new = _new_modules("import mypy.build", "import actorio.mypy")
    assert _actorio_modules(new) == {"actorio", "actorio._lazy", "actorio.mypy"}
    assert {name for name in new if not name.startswith("mypy.")} == {
        "actorio",
        "actorio._lazy",
        "actorio.mypy",
    }
    assert not _top_level(new) & RUNTIME_DEPENDENCIES


@pytest.mark.parametrize(
    ("statement", "loaded"),
    [
        ("import actorio; actorio.__version__", {"actorio", "actorio._lazy"}),
        ("import actorio.testing", {"actorio", "actorio._lazy", "actorio.testing"}),
        (
            "import actorio.testing.pytest_plugin",
            {"actorio", "actorio._lazy", "actorio.testing", "actorio.testing.pytest_plugin"},
        ),
        ("import actorio.nats", {"actorio", "actorio._lazy", "actorio.nats"}),
        ("import actorio.persistence", {"actorio", "actorio._lazy", "actorio.persistence"}),
    ],
)
def test_importing_a_package_loads_neither_the_runtime_nor_pydantic(statement: str, loaded: set[str]) -> None:
    new = _new_modules("", statement)
    assert _actorio_modules(new) == loaded
    assert not _top_level(new) & RUNTIME_DEPENDENCIES


def test_the_first_use_of_a_name_loads_its_module() -> None:
    new = _new_modules("import actorio", "actorio.Message")
    assert "actorio._message" in new
    assert "pydantic" in new


@pytest.mark.parametrize("package", ["actorio", "actorio.nats", "actorio.persistence", "actorio.testing"])
def test_a_star_import_of_a_fresh_package_binds_every_public_name(package: str) -> None:
    code = (
        f"import {package} as package\nfrom {package} import *\n"
        "missing = [name for name in package.__all__ if name not in globals()]\n"
        "assert not missing, missing\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def _exports(package: types.ModuleType) -> dict[str, str]:
    table: dict[str, str] = vars(package)["_EXPORTS"]
    return table


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.__name__)
def test_every_public_name_resolves_to_its_module_s_object(package: types.ModuleType) -> None:
    exports = _exports(package)
    for name in package.__all__:
        value: object = getattr(package, name)
        module = importlib.import_module(exports[name], package.__name__)
        assert value is getattr(module, name), name
        assert vars(package)[name] is value, f"{name} is not kept after its first use"
        assert name in dir(package), name


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.__name__)
def test_the_table_the_type_checkers_imports_and_all_name_the_same_things(
    package: types.ModuleType,
) -> None:
    tree = ast.parse(inspect.getsource(package))
    [block] = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]
    imported: dict[str, str] = {}
    for statement in block.body:
        assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
        for alias in statement.names:
            # ``from ._x import Name as Name``: an explicit re-export for type checkers.
            assert alias.asname == alias.name, ast.unparse(statement)
            imported[alias.name] = "." * statement.level + (statement.module or "")
    assert imported == _exports(package)
    assert sorted(package.__all__) == sorted(imported)
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.__name__)
def test_an_unknown_name_is_an_attribute_error_as_in_any_module(package: types.ModuleType) -> None:
    with pytest.raises(AttributeError) as raised:
        _ = package.no_such_name
    assert str(raised.value) == f"module {package.__name__!r} has no attribute 'no_such_name'"
    assert raised.value.name == "no_such_name"
    assert raised.value.obj is package
    assert not hasattr(package, "__wrapped__")
    with pytest.raises(ImportError, match=f"^cannot import name 'no_such_name' from {package.__name__!r}"):
        exec(f"from {package.__name__} import no_such_name", {})


def test_the_version_is_a_plain_attribute() -> None:
    assert "__version__" in vars(actorio)
    assert actorio.__version__ == version("actorio")
