"""The docs site, built by Sphinx from Markdown pages (MyST) with the Furo theme.

Build it with ``python -m sphinx -W -b html docs docs/_build/html`` (``-W``: a warning fails the
build, as in the test suite). The API reference is generated from the docstrings of the names in
each package's ``__all__``; every code block of the pages runs in the test suite
(tests/docs/test_docs_snippets.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from sphinx.application import Sphinx
from sphinx.ext.autodoc import DataDocumenter, Documenter, ModuleDocumenter
from sphinx.pycode import ModuleAnalyzer

import actorio

project = "actorio"
author = "The actorio developers"
copyright = "2018 Jonathan GAYVALLET (actorio 0.1.4), 2026 the actorio developers"
release = version = actorio.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/_build"]

# `Name` in a docstring is a reference to a Python object, as the docstrings are written.
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"

myst_heading_anchors = 3  # [text](page.md#a-heading) links
myst_enable_extensions = ["deflist"]

html_theme = "furo"
html_title = f"actorio {release}"
html_show_sourcelink = False


class ExportedDataDocumenter(DataDocumenter):
    """``.. autoexporteddata:: actorio.NO_REPLY``: a constant or type alias in a lazy package's
    ``_EXPORTS``. autodoc reads a variable's docstring from the module it documents, which only
    imports it (and ``automodule`` leaves such variables out); this reads it from the module that
    defines it, named in ``_EXPORTS``. The reference pages list these names one by one."""

    objtype = "exporteddata"
    directivetype = "data"
    priority = DataDocumenter.priority + 1  # below the class and function documenters

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Any) -> bool:
        return isinstance(parent, ModuleDocumenter) and membername in getattr(parent.object, "_EXPORTS", {})

    def get_module_comment(self, attrname: str) -> list[str] | None:
        package = importlib.import_module(self.modname)
        defining = importlib.import_module(package._EXPORTS[attrname], self.modname)
        docs = ModuleAnalyzer.for_module(defining.__name__).find_attr_docs()
        found = docs.get(("", attrname))
        return list(found) if found else None

    def should_suppress_value_header(self) -> bool:
        # A value's repr says something for numbers and strings, not for an object or an alias.
        return not isinstance(self.object, (int, float, str)) or super().should_suppress_value_header()


def setup(app: Sphinx) -> dict[str, Any]:
    documenter: type[Documenter] = ExportedDataDocumenter
    app.add_autodocumenter(documenter)
    return {"parallel_read_safe": True}
