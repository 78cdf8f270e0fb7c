"""Must fail: a name that actorio, actorio.nats or actorio.testing does not export.

The packages import their names on first use, through a module ``__getattr__`` that type checkers
must not see (they would then accept any name, typed as its return type): each line here stops
failing if they do. See fail_tell_ask.py for how the must-fail lines are marked. Nothing here is
ever run.
"""

from __future__ import annotations

import actorio
import actorio.nats
import actorio.testing


def attributes() -> list[object]:
    return [
        actorio.NoSuchName,  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        actorio.nats.NoSuchName,  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        actorio.testing.NoSuchName,  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    ]
