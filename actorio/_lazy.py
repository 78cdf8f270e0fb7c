"""The lazy public namespaces of actorio's packages (PEP 562): a name's module is imported on first
use, so that importing a package (and the mypy plugin, which imports ``actorio``) loads neither
the runtime nor pydantic. Packaging, not runtime: the one private module that ``actorio.nats``
and ``actorio.testing`` may import besides ``actorio`` and ``actorio.lowlevel``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, object], exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's module ``__getattr__`` and ``__dir__`` (PEP 562) for ``exports``, name -> module
    (relative to the package whose globals are ``namespace``).

    ``__getattr__`` imports a name's module on first use and keeps the value in ``namespace``, so
    that later lookups are plain ones; a name not in ``exports`` raises ``AttributeError`` as a
    module does. ``__dir__`` lists the package's globals and ``exports``."""
    package = str(namespace["__name__"])

    def module_getattr(name: str) -> object:
        module = exports.get(name)
        if module is None:
            message = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(message, name=name, obj=sys.modules.get(package))
        value: object = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *exports})

    return module_getattr, module_dir
