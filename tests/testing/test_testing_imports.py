"""actorio.testing is written against the public API and actorio.lowlevel, nothing else of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import actorio.testing

PACKAGE = Path(actorio.testing.__file__).parent
ALLOWED_CORE = {"actorio", "actorio.lowlevel"}


def _core_imports(path: Path) -> list[str]:
    """The core modules ``path`` imports (``actorio``, ``actorio.x``), absolute names."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "actorio"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:
                continue  # a module of actorio.testing
            if node.level == 2:
                found.append("actorio" + (f".{node.module}" if node.module else ""))
            elif node.level == 0 and node.module is not None and node.module.split(".")[0] == "actorio":
                found.append(node.module)
            elif node.level > 2:
                found.append(f"{'.' * node.level}{node.module or ''}")
    return found


def test_the_kit_imports_only_the_public_api_and_lowlevel() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert sources
    outside = {
        f"{path.name}: {module}"
        for path in sources
        for module in _core_imports(path)
        if module not in ALLOWED_CORE and not module.startswith("actorio.testing")
    }
    assert outside == set()


def test_the_kit_reads_no_private_name_wholesale() -> None:
    waived = [
        path.name for path in sorted(PACKAGE.glob("*.py")) if "reportPrivateUsage=false" in path.read_text()
    ]
    assert waived == []
