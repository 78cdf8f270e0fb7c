"""Traces: a span per handled message, child of the span of the code that sent it.

The sender's context travels beside the message, never in it: a send hook
(`lowlevel.add_send_hook`) notes the context of the sending code's span (its ``SpanContext``, not
the span) against the message as queued (an ask's own copy), in a table keyed by the message's
identity that forgets a message when it is freed; the handler wrapper
(`lowlevel.add_handler_wrapper`) finds it there and starts the span of the handling as its
child. A timer's message is linked (not parented) to where the timer was started. Across NATS
the context is a W3C ``traceparent`` / ``tracestate`` header pair (see ``_propagation``).

Span names and attributes follow OpenTelemetry's messaging conventions where they fit
(``messaging.system``, ``messaging.operation.*``, ``messaging.destination.name``), and say the
rest under ``actorio.*``. No message field's value is recorded, unless its class opts in with
``telemetry_fields`` (a tuple of field names).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Generator, Hashable, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actorio import Actor, BaseRef, EndMainLoop, UnhandledMessage, dead_letters
from actorio.lowlevel import (
    AskRef,
    Handler,
    LogLimit,
    add_restart_hook,
    decision_on,
    remove_restart_hook,
    wire_name_of,
)

from ._metrics import Metrics, class_name

if TYPE_CHECKING:
    from contextvars import Token

    from actorio import DeadLetter, Message

__all__ = ["MAX_TRACESTATE", "Tracing", "current_span", "extract_w3c", "inject_w3c", "telemetry_failed"]

MAX_TRACESTATE = 512
"""The longest ``tracestate`` header read from the wire (W3C allows 32 members of at most 256
characters; 512 keeps the common cases)."""

SYSTEM = "actorio"
INSTRUMENTATION = "actorio"
_INT64 = 2**63
"""An integer attribute is a signed 64-bit one in OTLP: a larger one fails the exporter's
encoding (a traceback logged per span), so such a field is left out."""


class _Noted(weakref.ref[Any]):
    """What the sender's side noted for a message, a weak reference to it: the context of the
    sending code's span (its `SpanContext`: ids and flags, never the span, which a message kept
    for long would keep, with its attributes and events), and whether it is a timer's. A span
    is all the handling takes from the sender's context: its parent (or, a timer's, its link)."""

    __slots__ = ("key", "span_context", "timer")
    key: int
    span_context: SpanContext
    timer: bool

    def __new__(
        cls, message: Any, forget: Callable[[_Noted], None], key: int, span_context: SpanContext, timer: bool
    ) -> _Noted:
        self = super().__new__(cls, message, forget)
        self.key = key
        self.span_context = span_context
        self.timer = timer
        return self

    def __init__(
        self, message: Any, forget: Callable[[_Noted], None], key: int, span_context: SpanContext, timer: bool
    ) -> None:
        """(Set by ``__new__``: ``weakref.ref.__init__`` would only check its arguments.)"""


def _wire_name(message_type: type) -> str | None:
    try:
        return wire_name_of(message_type)
    except Exception:  # not a message class the wire form knows
        return None


class Tracing:
    """The hooks of one `instrument` call: spans from ``tracer``, figures to ``metrics``."""

    def __init__(self, tracer: trace.Tracer | None, metrics: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self._noted: dict[int, _Noted] = {}

    # -- the sender's side ------------------------------------------------------------------

    def _note(self, message: Any, timer: bool) -> None:
        key = id(message)
        try:
            entry = _Noted(message, self._forget, key, trace.get_current_span().get_span_context(), timer)
        except TypeError:  # a message class with __slots__ and no __weakref__: not traced across
            return
        self._noted[key] = entry

    def _forget(self, entry: _Noted) -> None:
        """A noted message is freed: its entry goes (unless the message was noted again since)."""
        if self._noted.get(entry.key) is entry:
            del self._noted[entry.key]

    def on_send(self, recipient: BaseRef, message: Message[Any], asked: bool) -> None:
        """Send hook: note the sending code's context against the message as queued."""
        if self.tracer is not None:
            self._note(message, False)
        if asked and self.metrics is not None and type(message.sender) is AskRef:
            self.metrics.ask_started(message.sender.future)

    def on_timer(self, actor: Actor[Any], key: Hashable, message: Message[Any]) -> None:
        """Timer hook: note where the timer was started, for a link."""
        if self.tracer is not None:
            self._note(message, True)

    def on_dead_letter(self, letter: DeadLetter) -> None:
        """Dead-letter listener: an event on the current span, and the metric."""
        if self.metrics is not None:
            self.metrics.dead_letter(letter.reason)
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "actorio.dead_letter",
                {
                    "actorio.dead_letter.reason": letter.reason,
                    "actorio.dead_letter.recipient": letter.recipient,
                    "actorio.message.type": type(letter.message).__qualname__,
                },
            )

    # -- the handler's side -----------------------------------------------------------------

    def wrap(self, actor_class: type, message_type: type | None, handler: Handler) -> Handler:
        """Handler wrapper: a span around the handling of each message, and the metrics."""
        tracer = self.tracer
        metrics = self.metrics
        noted = self._noted
        actor_class_name = class_name(actor_class)
        constant: dict[type, tuple[str, dict[str, Any]]] = {}  # per message class: name, attributes

        def constant_of(kind: type[Any]) -> tuple[str, dict[str, Any]]:
            attributes: dict[str, Any] = {
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "actorio.actor.class": actor_class_name,
                "actorio.message.type": kind.__qualname__,
            }
            wire = _wire_name(kind)
            if wire is not None:
                attributes["actorio.message.wire_name"] = wire
            found = constant[kind] = (f"process {kind.__name__}", attributes)
            return found

        def start(
            actor: Any, message: Any, kind: type[Any], asked: bool
        ) -> tuple[Span | None, Token[otel_context.Context] | None]:
            """The span of this handling, current (its context's token): what the SDK raises
            (a sampler, a span processor's ``on_start``) is logged and the message handled
            without a span."""
            assert tracer is not None
            try:
                entry = noted.get(id(message))
                parent: otel_context.Context | None = None
                links: list[Link] = []
                if entry is not None and entry() is message:
                    if entry.timer:
                        links.append(Link(entry.span_context))
                    else:
                        parent = trace.set_span_in_context(NonRecordingSpan(entry.span_context))
                name, attributes = constant.get(kind) or constant_of(kind)
                attributes = attributes.copy()
                attributes["messaging.operation.name"] = "ask" if asked else ("timer" if links else "tell")
                attributes["messaging.destination.name"] = attributes["actorio.actor.id"] = actor.identifier
                for field in getattr(kind, "telemetry_fields", ()):
                    value = getattr(message, field, None)
                    if isinstance(value, (str, bool, float)) or (
                        isinstance(value, int) and -_INT64 <= value < _INT64  # OTLP's integers
                    ):
                        attributes[f"actorio.message.field.{field}"] = value
            except Exception as error:  # (a field of the message's that raises when read)
                telemetry_failed("reading a message for its span", error)
                return None, None
            # CONSUMER, told or asked: OpenTelemetry's messaging conventions give a message's
            # processing this kind (an asked message is a message, and its reply one too).
            return current_span(
                tracer, name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
            )

        async def traced(actor: Any, message: Any) -> Any:
            kind: type[Any] = message.__class__
            asked = type(message.sender) is AskRef
            span = token = None
            if tracer is not None:
                span, token = start(actor, message, kind, asked)
            started = metrics.started(actor) if metrics is not None else 0.0
            outcome = "handled"
            try:
                return await handler(actor, message)
            except EndMainLoop:  # a clean stop (as a published actor's keeper stops it): no failure
                outcome = "stopped"
                raise
            except Exception as error:
                if asked:
                    outcome = "unhandled" if isinstance(error, UnhandledMessage) else "failed"
                    decision = "raised at the asker"
                else:
                    decision = decision_on(actor, error)
                    outcome = "unhandled" if decision == "unhandled" else "failed"
                if span is not None:
                    try:
                        span.record_exception(error, escaped=True)  # (raised on, out of the span)
                        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                        span.set_attribute("error.type", type(error).__qualname__)
                        span.add_event(
                            "actorio.supervision",
                            {
                                "actorio.supervision.decision": decision,
                                "exception.type": type(error).__qualname__,
                            },
                        )
                    except Exception as failure:
                        telemetry_failed("recording a failure", failure)
                raise
            except BaseException:
                outcome = "cancelled"
                raise
            finally:
                # What the SDK raises here (a span processor's on_end, a metric reader's view)
                # is logged: it never replaces the handler's result or error.
                if span is not None:
                    try:
                        span.set_attribute("actorio.outcome", outcome)
                        span.end()
                    except Exception as failure:
                        telemetry_failed("ending a span", failure)
                if token is not None:
                    otel_context.detach(token)
                if metrics is not None:
                    try:
                        metrics.handled(
                            actor_class_name, kind.__qualname__, outcome, metrics.clock() - started
                        )
                    except Exception as failure:
                        telemetry_failed("recording a metric", failure)

        traced.__name__ = getattr(handler, "__name__", "traced")
        traced.__qualname__ = getattr(handler, "__qualname__", traced.__name__)
        traced.__doc__ = getattr(handler, "__doc__", None)
        return traced

    def on_restart(self, actor: Actor[Any], error: BaseException | None) -> None:
        """Restart hook: a failure answered by a restart (one the supervisor made), counted."""
        if self.metrics is not None and error is not None:
            self.metrics.restart(class_name(type(actor)))

    def listen(self) -> None:
        dead_letters.add_listener(self.on_dead_letter)
        add_restart_hook(self.on_restart)

    def stop_listening(self) -> None:
        remove_restart_hook(self.on_restart)
        dead_letters.remove_listener(self.on_dead_letter)


_failures = LogLimit(logging.getLogger("actorio.telemetry"), about="telemetry failures")


def current_span(
    tracer: trace.Tracer, name: str, **options: Any
) -> tuple[Span | None, Token[otel_context.Context] | None]:
    """A span ``name`` started with ``options`` (``start_span``'s) and made current: ``(span,
    token)`` for ``otel_context.detach``. What the SDK raises (a sampler, a span processor's
    ``on_start``) is logged: ``(None, None)``, and the work goes on without a span."""
    try:
        # start_span and attach, rather than start_as_current_span: a third less per span.
        span = tracer.start_span(name, record_exception=False, set_status_on_exception=False, **options)
        return span, otel_context.attach(trace.set_span_in_context(span))
    except Exception as error:
        telemetry_failed("starting a span", error)
        return None, None


def telemetry_failed(doing: str, error: Exception) -> None:
    """The OpenTelemetry SDK (a sampler, a span processor, a view) raised ``error`` while actorio
    was ``doing`` something for a handled message: logged within a limit; the message is handled
    as if telemetry were off for it."""
    _failures.log(logging.ERROR, "telemetry failed %s, the message is handled without it: %r", doing, error)


# -- across processes -----------------------------------------------------------------------------

_W3C = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(
    r"[ \t]*(?:00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"
    r"|(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-[\x21-\x7e]*)?)[ \t]*"
)
"""W3C's ``traceparent``: version 00, or a later version (its first four fields read as 00's, as
W3C asks of a receiver, and whatever printable fields follow), never ``ff``."""
MAX_TRACEPARENT = 512
"""The longest ``traceparent`` read (OpenTelemetry's limit: longer ones it logs, and ignores)."""
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
"""One ``key=value`` member of W3C's ``tracestate``."""


def _tracestate_ok(value: str) -> bool:
    """Whether ``value`` is a ``tracestate`` the propagator reads without a complaint."""
    if len(value) > MAX_TRACESTATE:
        return False
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    if len(members) > 32 or not all(_TRACESTATE_MEMBER.fullmatch(member) for member in members):
        return False
    return len({member.split("=", 1)[0] for member in members}) == len(members)


def inject_w3c(headers: MutableMapping[str, str]) -> None:
    """Write the current span's context into ``headers`` as W3C ``traceparent`` / ``tracestate``."""
    _W3C.inject(headers)


@contextmanager
def extract_w3c(headers: Mapping[str, str]) -> Generator[object, None, None]:
    """The context of W3C headers from the wire, current in the block (and given by it). Without
    a valid ``traceparent`` it is a new, empty context, never the one current around the block
    (no sender's): the message's span is the root of a new trace. Headers it cannot read are
    ignored, silently: a ``traceparent`` that is not of the W3C format (any version but ``ff``)
    or is longer than 512 characters, and a ``tracestate`` longer than `MAX_TRACESTATE` or that
    is not a list of at most 32 valid, distinct members, are dropped before the propagator reads
    them (it would log a line, with the value, for each one)."""
    carrier = {key: headers[key] for key in ("traceparent", "tracestate") if key in headers}
    context = None
    parent = carrier.get("traceparent", "")
    if len(parent) <= MAX_TRACEPARENT and _TRACEPARENT.fullmatch(parent):
        if "tracestate" in carrier and not _tracestate_ok(carrier["tracestate"]):
            del carrier["tracestate"]
        try:
            context = _W3C.extract(carrier)
        except Exception:  # hostile input: never the receiver's failure
            context = None
    if context is None:
        context = otel_context.Context()
    token = otel_context.attach(context)
    try:
        yield context
    finally:
        otel_context.detach(token)
