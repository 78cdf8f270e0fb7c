"""actorio 0.1.4's module ``actorio.actor``, kept so that code written for it imports: `Actor` and
`EndMainLoop`, from where they live now. Importing it warns: import them from ``actorio``."""

from ._actor import Actor
from ._compat import warn_moved
from ._exceptions import EndMainLoop

__all__ = ["Actor", "EndMainLoop"]

warn_moved(__name__, "Actor and EndMainLoop")
