"""Metrics, through the OpenTelemetry metrics API: messages handled (by actor class, message type
and outcome), handler durations, mailbox depths, asks in flight and timed out, restarts and dead
letters. Names follow OpenTelemetry's conventions (dotted, lower case; units in UCUM), under
``actorio.``; a Prometheus exporter shows them as ``actorio_messages_handled_total`` and so on.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from actorio.lowlevel import ask_expired, mailbox_of

__all__ = ["DURATION_BUCKETS", "Metrics", "class_name"]

DURATION_BUCKETS = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
]  # fmt: skip
"""The bucket bounds, in seconds, advised for ``actorio.handler.duration`` (OpenTelemetry's
advice for request durations, from 5 ms up to 10 s, below which three finer ones for handlers
under a millisecond). Without it the SDK's default bounds (0, 5, 10, 25 ... 10,000) are made for
milliseconds: every handler would fall in the first bucket."""


def class_name(cls: type) -> str:
    """An actor class as the metrics and spans name it (``actorio.actor.class``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


class _Observed:
    """What the observable instruments of one meter read at collection: the handled counts, and
    the actors whose mailboxes the depth gauge sums. One per meter, made with those instruments
    and kept with them: the SDK keeps an observable instrument, and its first callbacks, for as
    long as the meter lives (a second `instrument` on the same meter is given the same
    instrument, and its own callbacks are dropped), so every `Metrics` of a meter counts here, the
    counter going on from where the previous call left it."""

    def __init__(self, meter: metrics.Meter) -> None:
        # Counted here and read at collection (an observable counter): a dict increment per
        # message, where Counter.add checks its attributes and makes a measurement each time.
        self.handled: dict[tuple[str, str, str], int] = {}
        self.actors: weakref.WeakSet[Any] = weakref.WeakSet()
        meter.create_observable_counter(
            "actorio.messages.handled",
            callbacks=[self._handled_counts],
            unit="{message}",
            description="Messages handled, by outcome",
        )
        meter.create_observable_gauge(
            "actorio.mailbox.depth",
            callbacks=[self._depths],
            unit="{message}",
            description="Messages queued, summed by actor class",
        )

    def _handled_counts(self, options: CallbackOptions) -> Iterable[Observation]:
        counts = dict(self.handled)  # a copy: called from the exporter's thread
        return [
            Observation(
                count,
                {"actorio.actor.class": key[0], "actorio.message.type": key[1], "actorio.outcome": key[2]},
            )
            for key, count in counts.items()
        ]

    def _depths(self, options: CallbackOptions) -> Iterable[Observation]:
        # Called from the exporter's thread: the set may grow meanwhile; a copy is retried.
        for _ in range(10):
            try:
                actors = list(self.actors)
                break
            except RuntimeError:
                continue
        else:
            return []
        depths: dict[str, int] = {}
        for actor in actors:
            mailbox = mailbox_of(actor)
            if mailbox is None or not actor.running:
                continue
            name = class_name(actor.__class__)
            depths[name] = depths.get(name, 0) + len(mailbox)
        return [Observation(depth, {"actorio.actor.class": name}) for name, depth in depths.items()]


_observed: weakref.WeakKeyDictionary[metrics.Meter, _Observed] = weakref.WeakKeyDictionary()
"""Each meter's `_Observed` (it refers to no meter: an entry goes with its meter)."""


def _observed_of(meter: metrics.Meter) -> _Observed:
    try:
        found = _observed.get(meter)
    except TypeError:  # a meter that is neither hashable nor weakly referable: its own each time
        return _Observed(meter)
    if found is None:
        found = _observed[meter] = _Observed(meter)
    return found


class Metrics:
    """The instruments of one `instrument` call, made from ``meter``. The observable ones, and
    what they read, are the meter's (see `_Observed`): a `Metrics` is released with its call."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.clock = time.perf_counter
        observed = _observed_of(meter)
        self._handled = observed.handled
        self._actors = observed.actors
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        self._duration = meter.create_histogram(
            "actorio.handler.duration",
            unit="s",
            description="Time spent in a handler",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._restarts = meter.create_counter(
            "actorio.restarts", unit="{restart}", description="Failures answered by a restart"
        )
        self._dead_letters = meter.create_counter(
            "actorio.dead_letters", unit="{message}", description="Dead letters, by reason"
        )
        self._asks = meter.create_up_down_counter(
            "actorio.asks.in_flight", unit="{ask}", description="Asks sent and not yet answered"
        )
        self._timeouts = meter.create_counter(
            "actorio.asks.timed_out", unit="{ask}", description="Asks that reached their own timeout"
        )
        self._sent = meter.create_counter(
            "messaging.client.sent.messages", unit="{message}", description="Messages a transport sent"
        )
        self._received = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Messages a transport received",
        )
        self._transport_errors = meter.create_counter(
            "actorio.transport.errors", unit="{error}", description="A transport's errors, by kind"
        )

    def started(self, actor: Any) -> float:
        """A handler of ``actor`` starts: the actor's mailbox counts in the depth gauge from now
        on (an actor stuck in its first handler too); returns the time, for `handled`."""
        if actor not in self._actors:
            self._actors.add(actor)
        return self.clock()

    def handled(self, actor_class: str, message_type: str, outcome: str, seconds: float) -> None:
        key = (actor_class, message_type, outcome)
        self._handled[key] = self._handled.get(key, 0) + 1
        labels = self._labels.get(key[:2])
        if labels is None:
            labels = self._labels[key[:2]] = {
                "actorio.actor.class": actor_class,
                "actorio.message.type": message_type,
            }
        self._duration.record(seconds, labels)

    def transport(self, transport: str, event: str, detail: str) -> None:
        """Transport listener (``lowlevel.add_transport_listener``): NATS traffic and errors."""
        if event == "error":
            self._transport_errors.add(1, {"messaging.system": transport, "error.type": detail})
        elif event in ("sent", "received"):
            counter = self._sent if event == "sent" else self._received
            counter.add(1, {"messaging.system": transport, "messaging.operation.name": detail})

    def restart(self, actor_class: str) -> None:
        self._restarts.add(1, {"actorio.actor.class": actor_class})

    def dead_letter(self, reason: str) -> None:
        self._dead_letters.add(1, {"actorio.dead_letter.reason": reason})

    def ask_started(self, future: asyncio.Future[Any]) -> None:
        self._asks.add(1)
        future.add_done_callback(self._ask_done)

    def _ask_done(self, future: asyncio.Future[Any]) -> None:
        self._asks.add(-1)
        if ask_expired(future):  # the ask's own timeout, not a TimeoutError of its handler's
            self._timeouts.add(1)
