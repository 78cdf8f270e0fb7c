"""`instrument` and `uninstrument`: OpenTelemetry traces and metrics on, and off again.

Needs the ``otel`` extra (``pip install '.[otel]'`` in the repository: ``opentelemetry-api``):
the API alone records nothing until an SDK (or another implementation) is configured, and
then the spans and figures go where its providers send them.
"""

from __future__ import annotations

from typing import Any

from actorio import lowlevel

__all__ = ["instrument", "instrumented", "uninstrument"]

_current: Any = None
"""The hooks of the `instrument` call in force (a `Tracing`), or ``None``."""


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    traces: bool = True,
    metrics: bool = True,
) -> None:
    """Trace every handled message and count what actors do, through OpenTelemetry.

    Spans come from ``tracer_provider`` (default: the global one, ``opentelemetry.trace``'s),
    figures go to ``meter_provider`` (default: the global one); ``traces=False`` or
    ``metrics=False`` leaves one out. Calling it again replaces the previous call's settings.
    Actors started from now on are traced in full; an actor already running, for the message
    classes it had not met yet (see ``actorio.lowlevel.add_handler_wrapper``).

    With traces on, the NATS layer carries the sending code's context as W3C ``traceparent`` /
    ``tracestate`` headers, so that a conversation across processes is one trace; a remote ask
    is a ``PRODUCER`` span of its own (``ask <name>``), parent of the span that handles it, and
    its duration (``messaging.client.operation.duration``) is recorded with metrics on.

    Raises ``ImportError`` with a hint if ``opentelemetry-api`` is not installed.
    """
    try:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry import trace
    except ImportError as error:  # pragma: no cover - the extra is installed for the tests
        raise ImportError(
            "actorio.telemetry.instrument needs OpenTelemetry: pip install opentelemetry-api "
            "(or, in actorio's repository, pip install '.[otel]')"
        ) from error
    from ._metrics import Metrics
    from ._operations import Operations
    from ._tracing import INSTRUMENTATION, Tracing, extract_w3c, inject_w3c

    global _current
    uninstrument()
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION) if traces else None
    meter = (
        (meter_provider or otel_metrics.get_meter_provider()).get_meter(INSTRUMENTATION) if metrics else None
    )
    tracing = Tracing(tracer, None if meter is None else Metrics(meter))
    lowlevel.add_send_hook(tracing.on_send)
    lowlevel.add_timer_hook(tracing.on_timer)
    lowlevel.add_handler_wrapper(tracing.wrap)
    tracing.listen()
    if tracing.metrics is not None:
        lowlevel.add_transport_listener(tracing.metrics.transport)
    if tracer is not None:
        lowlevel.set_propagator((inject_w3c, extract_w3c))
    lowlevel.set_transport_operation_hook(Operations(tracer, meter))
    _current = tracing


def uninstrument() -> None:
    """Take off what `instrument` put on: actors started from now on pay nothing for it again.
    Nothing happens if it is not on."""
    global _current
    tracing, _current = _current, None
    if tracing is None:
        return
    lowlevel.set_propagator(None)
    lowlevel.set_transport_operation_hook(None)
    if tracing.metrics is not None:
        lowlevel.remove_transport_listener(tracing.metrics.transport)
    lowlevel.remove_handler_wrapper(tracing.wrap)
    lowlevel.remove_timer_hook(tracing.on_timer)
    lowlevel.remove_send_hook(tracing.on_send)
    tracing.stop_listening()


def instrumented() -> bool:
    """True while `instrument` is on."""
    return _current is not None
