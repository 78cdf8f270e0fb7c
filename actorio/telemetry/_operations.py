"""A transport's client operations (a remote ask): a ``PRODUCER`` span around each, and its duration.

The transport opens the block (``lowlevel.transport_operation``) around the request and the
reading of its reply; the headers it sends are written inside it, so the span of the handling
on the other side is the child of this one. Names and attributes follow OpenTelemetry's
messaging conventions: the span ``ask <destination>``, of kind ``PRODUCER`` (a send whose
context the message carries, as its creation context), ``messaging.operation.type`` ``send``,
``error.type`` on failure (the exception's class name); the histogram
``messaging.client.operation.duration``, in seconds, whose attributes have few values (the
published name or entity type, never a key or a sender's address).

What the SDK raises here is logged (see ``_tracing``): the ask goes on without its span or its
figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._metrics import DURATION_BUCKETS
from ._tracing import current_span, telemetry_failed

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.trace import Span

__all__ = ["Operations"]


class Operations:
    """The block of ``lowlevel.set_transport_operation_hook``: spans from ``tracer``, durations
    to ``meter``'s histogram (either may be None: left out)."""

    def __init__(self, tracer: trace.Tracer | None, meter: metrics.Meter | None) -> None:
        self.tracer = tracer
        self.duration = (
            None
            if meter is None
            else meter.create_histogram(
                "messaging.client.operation.duration",
                unit="s",
                description="Time from a client's request to its reply, read and checked",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        )

    @contextmanager
    def __call__(
        self, transport: str, name: str, destination: str, template: str
    ) -> Generator[None, None, None]:
        span, token = self._start(transport, name, destination, template)
        started = time.perf_counter()
        error_type: str | None = None
        cancelled = False
        try:
            yield
        except asyncio.CancelledError:
            # Cancelled by its caller (a wait_for's timeout, a task cancelled): not the
            # operation's failure. The span ends so marked, and no duration is recorded.
            cancelled = True
            if span is not None:
                try:
                    span.set_attribute("actorio.outcome", "cancelled")
                except Exception as failure:
                    telemetry_failed("recording a cancellation", failure)
            raise
        except BaseException as error:
            error_type = type(error).__qualname__
            if span is not None:
                try:
                    span.record_exception(error, escaped=True)  # (raised on, out of the span)
                    span.set_status(Status(StatusCode.ERROR, error_type))
                    span.set_attribute("error.type", error_type)
                except Exception as failure:
                    telemetry_failed("recording a failure", failure)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
            if span is not None:
                try:
                    span.end()
                except Exception as failure:
                    telemetry_failed("ending a span", failure)
            if self.duration is not None and not cancelled:
                attributes = {"messaging.system": transport, "messaging.operation.name": name}
                if template:
                    key = (
                        "messaging.destination.name"
                        if template == destination
                        else "messaging.destination.template"
                    )
                    attributes[key] = template
                if error_type is not None:
                    attributes["error.type"] = error_type
                try:
                    self.duration.record(time.perf_counter() - started, attributes)
                except Exception as failure:
                    telemetry_failed("recording a metric", failure)

    def _start(
        self, transport: str, name: str, destination: str, template: str
    ) -> tuple[Span | None, Token[otel_context.Context] | None]:
        """The operation's span, current (with its context's token), or none."""
        if self.tracer is None:
            return None, None
        attributes = {
            "messaging.system": transport,
            "messaging.operation.name": name,
            "messaging.operation.type": "send",
            "messaging.destination.name": destination,
        }
        if template and template != destination:
            attributes["messaging.destination.template"] = template
        return current_span(
            self.tracer, f"{name} {template or '(address)'}", kind=SpanKind.PRODUCER, attributes=attributes
        )
