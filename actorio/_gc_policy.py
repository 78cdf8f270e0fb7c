"""The cyclic garbage collector's policy for an actor program (what `run` applies).

An actor program allocates many short-lived objects (a message, its fields' dict and set per
send; a future per ask) while a large, stable heap stays alive (the modules, pydantic's
validators, the actors themselves). With CPython's defaults (a young collection every 700 net
allocations, a full one when the survivors grow by a quarter), every full collection walks that
whole stable heap again, and a burst of queued messages triggers many of them. The policy:

- freeze what exists once the root actor has started (``gc.freeze()``): the imports, the
  classes, the actors built at start-up move to a generation the collector never walks. They are
  still freed by reference counting; only a reference cycle among them stays until the program
  ends (`run` unfreezes on its way out);
- raise the young generation's threshold (700 to 20,000 by default): fewer collections, each
  over objects that are mostly garbage already. At most that many objects in unreachable cycles
  wait for a collection: a few MB at worst.

Figures (docs/performance.md; the benchmark's row "tell, built, GC policy"): building and
telling 200,000 messages in a burst, 1.59x the throughput of the default collector; freezing
alone gives 1.06x, the threshold alone 1.32x, a threshold of 100,000 1.35x. Measured before
``tell`` yielded to the receiving actor every 256 messages: a burst no longer piles up, and the
policy's gain on that row is now about 1.01x.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

__all__ = ["DEFAULT_GC_POLICY", "AppliedGcPolicy", "GcPolicy"]


@dataclass(frozen=True)
class GcPolicy:
    """What `actorio.run` does to the cyclic garbage collector (``gc``) while the program runs.

    - ``young_threshold``: the first threshold of ``gc.set_threshold`` (CPython's default is 700);
      the other two are kept. ``None`` leaves the thresholds as they are.
    - ``freeze_after_start``: call ``gc.freeze()`` once the root actor has started, so that the
      collector never walks again what start-up built (the objects stay freed by reference
      counting; a cycle among them is collected only after the program). Not when something is
      frozen already (by the program itself): what it froze stays frozen, and nothing is added.

    Everything is restored when `run` returns: the thresholds, and ``gc.unfreeze()`` of what it
    froze.
    ``run(root, gc_policy=None)`` leaves the collector alone.
    """

    young_threshold: int | None = 20_000
    freeze_after_start: bool = True

    def __post_init__(self) -> None:
        if self.young_threshold is not None and self.young_threshold < 1:
            raise ValueError(f"young_threshold must be at least 1, not {self.young_threshold}")

    def apply(self) -> AppliedGcPolicy:
        """Set the thresholds now; the returned object freezes (`AppliedGcPolicy.started`) and
        restores (`AppliedGcPolicy.restore`)."""
        return AppliedGcPolicy(self)


DEFAULT_GC_POLICY = GcPolicy()
"""The policy `actorio.run` applies unless told otherwise."""


class AppliedGcPolicy:
    """A `GcPolicy` in force: `started` once start-up is over, `restore` at the end (once)."""

    __slots__ = ("_policy", "_thresholds", "_frozen")

    def __init__(self, policy: GcPolicy) -> None:
        self._policy = policy
        self._thresholds = gc.get_threshold()
        self._frozen = False
        if policy.young_threshold is not None:
            gc.set_threshold(policy.young_threshold, *self._thresholds[1:])

    def started(self) -> None:
        """Start-up is over: freeze what exists, if the policy says so."""
        if self._policy.freeze_after_start and not self._frozen and gc.get_freeze_count() == 0:
            gc.collect()  # what start-up left as garbage is not kept frozen
            gc.freeze()
            self._frozen = True

    def restore(self) -> None:
        """Put the collector back as it was; the frozen objects are collected as usual again."""
        gc.set_threshold(*self._thresholds)
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
