"""actorio.telemetry: see inside a running actor system.

- `instrument` / `uninstrument`: OpenTelemetry traces (a span per handled message, child of the
  sender's span) and metrics (messages handled, handler durations, mailbox depths, asks,
  restarts, dead letters). Needs the ``otel`` extra (``opentelemetry-api``).
- `count_handlers`: handled and failed counts and time in handlers for `Actor.statistics`;
  `snapshot`: a tree of actors as JSON-ready data.
- `configure_alarms`: the always-on alarms (a handler holding the event loop, a mailbox growing,
  restarts logged as one line) and their thresholds.
- `serve_snapshots`: the tree under a root as JSON on a local HTTP endpoint, which
  ``python -m actorio top URL`` shows live in the terminal.

Mermaid pictures of a test's conversation and of a tree are in the test kit
(``actorio.testing.Conversation``, ``actorio.testing.tree_diagram``).

Nothing here costs the message path anything until it is turned on.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actorio.lowlevel import AlarmSettings as AlarmSettings
    from actorio.lowlevel import alarm_settings as alarm_settings
    from actorio.lowlevel import configure_alarms as configure_alarms
    from actorio.lowlevel import snapshot as snapshot

    from ._counting import count_handlers as count_handlers
    from ._counting import stop_counting_handlers as stop_counting_handlers
    from ._endpoint import SnapshotServer as SnapshotServer
    from ._endpoint import serve_snapshots as serve_snapshots
    from ._endpoint import snapshot_document as snapshot_document
    from ._instrument import instrument as instrument
    from ._instrument import instrumented as instrumented
    from ._instrument import uninstrument as uninstrument

__all__ = [
    "AlarmSettings",
    "SnapshotServer",
    "alarm_settings",
    "configure_alarms",
    "count_handlers",
    "instrument",
    "instrumented",
    "serve_snapshots",
    "snapshot",
    "snapshot_document",
    "stop_counting_handlers",
    "uninstrument",
]

# Each public name -> the module that defines it: what module __getattr__ imports.
_EXPORTS = {
    "AlarmSettings": "actorio.lowlevel",
    "alarm_settings": "actorio.lowlevel",
    "configure_alarms": "actorio.lowlevel",
    "snapshot": "actorio.lowlevel",
    "count_handlers": "._counting",
    "SnapshotServer": "._endpoint",
    "serve_snapshots": "._endpoint",
    "snapshot_document": "._endpoint",
    "stop_counting_handlers": "._counting",
    "instrument": "._instrument",
    "instrumented": "._instrument",
    "uninstrument": "._instrument",
}

if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any name
    from actorio._lazy import lazy_attributes

    __getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)
