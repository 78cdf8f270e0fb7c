"""actorio 0.1.4's module ``actorio.errors``, kept so that code written for it imports:
`ActorioException`, `EndMainLoop` and `UnhandledMessage`. Importing it warns: import them from
``actorio``."""

from ._compat import warn_moved
from ._exceptions import ActorioException, EndMainLoop, UnhandledMessage

__all__ = ["ActorioException", "EndMainLoop", "UnhandledMessage"]

warn_moved(__name__, "ActorioException, EndMainLoop and UnhandledMessage")
