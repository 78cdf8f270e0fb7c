"""actorio 0.1.4's module ``actorio.reference``, kept so that code written for it imports:
`ActorReference` (today's `ActorRef`), `Reference` and `ask`. Importing it warns: import
``ActorRef``, ``Reference`` and ``ask`` from ``actorio``."""

from ._compat import ActorReference, warn_moved
from ._ref import Reference, ask

__all__ = ["ActorReference", "Reference", "ask"]

warn_moved(__name__, "ActorRef (ActorReference's new name), Reference and ask")
