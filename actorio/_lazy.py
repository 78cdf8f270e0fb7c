"""The lazy public namespaces of actorio's packages (PEP 562): a name's module is imported on first
use, so that importing a package (and the mypy plugin, which imports ``actorio``) loads neither
the runtime nor pydantic. Packaging, not runtime: the one private module that ``actorio.nats``
and ``actorio.testing`` may import besides ``actorio`` and ``actorio.lowlevel``."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping

__all__ = ["lazy_attributes", "require_nats_client"]


def lazy_attributes(
    namespace: dict[str, object],
    exports: Mapping[str, str],
    deprecated: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's module ``__getattr__`` and ``__dir__`` (PEP 562) for ``exports``, name -> module
    (relative to the package whose globals are ``namespace``).

    ``__getattr__`` imports a name's module on first use and keeps the value in ``namespace``, so
    that later lookups are plain ones; a name not in ``exports`` raises ``AttributeError`` as a
    module does. ``__dir__`` lists the package's globals and ``exports``. A ``deprecated`` name
    (name -> (module, what to use instead)) is never kept: each use warns
    (``DeprecationWarning``, once per ``from package import name``), and ``__dir__`` does not list
    it."""
    package = str(namespace["__name__"])
    old_names = deprecated or {}

    def module_getattr(name: str) -> object:
        module = exports.get(name)
        if module is None and name in old_names:
            module, instead = old_names[name]
            # ``from package import name`` looks the name up twice: once in importlib's
            # _handle_fromlist (a ``hasattr``, to know whether to import a submodule), then for the
            # import itself. Only the second is the user's: warn once.
            caller = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]  # CPython's, since 2.1
            if caller.f_globals.get("__name__") != "importlib._bootstrap":
                message = f"{package}.{name} is actorio 0.1.4's name: use {instead}"
                warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(module, package), name)
        if module is None:
            message = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(message, name=name, obj=sys.modules.get(package))
        value: object = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *exports})

    return module_getattr, module_dir


def require_nats_client(what: str) -> None:
    """``ImportError`` naming what to install, if nats-py (an optional dependency) is missing:
    raised where ``what`` (``actorio.nats``, `JetStreamJournal`) is imported, before its own
    imports would fail with a bare ``No module named 'nats'``."""
    try:
        importlib.import_module("nats")
    except ImportError as error:
        # Not "pip install 'actorio[nats]'": on PyPI, actorio is the original 0.1.4, which has no such extra.
        raise ImportError(
            f"{what} needs the nats-py client: pip install 'nats-py>=2.9,<3' nkeys"
            " (or, in actorio's repository, pip install '.[nats]')"
        ) from error
