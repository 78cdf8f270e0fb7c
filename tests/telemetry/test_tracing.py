"""Traces through the OpenTelemetry SDK's in-memory exporter: a span per handled message, the
sender's span its parent, one trace across a conversation of three actors, no payload values."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import ClassVar

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from actorio import Actor, ActorRef, DeadLetter, EndMainLoop, Message, NoReply, dead_letters, handles
from actorio.telemetry import count_handlers, instrument, instrumented, stop_counting_handlers, uninstrument
from tests.support import bounded

SECRET = "s3cr3t-payload"


class Charge(Message[str]):
    card: str


class Record(Message):
    card: str


class Audit(Message):
    pass


class Tick(Message):
    pass


class Ledger(Actor[Record | Tick]):
    def __init__(self) -> None:
        super().__init__(identifier="ledger")
        self.records = 0

    @handles(Record)
    async def record(self, message: Record) -> None:
        self.records += 1

    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        pass


class Payments(Actor[Charge | Audit]):
    def __init__(self, ledger: ActorRef[Record | Tick]) -> None:
        super().__init__(identifier="payments")
        self.ledger = ledger

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        await self.ledger.tell(Record(card=message.card))
        return "ok"

    @handles(Audit)
    async def audit(self, message: Audit) -> None:
        raise ValueError("audit failed")


class Front(Actor[Charge]):
    def __init__(self, payments: ActorRef[Charge | Audit]) -> None:
        super().__init__(identifier="front")
        self.payments = payments

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        return await self.payments.ask(message)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider=provider, metrics=False)
    try:
        yield exporter
    finally:
        uninstrument()
        assert not instrumented()


def _one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [span for span in spans.get_finished_spans() if span.name == name]
    assert len(found) == 1, [span.name for span in spans.get_finished_spans()]
    return found[0]


@pytest.mark.asyncio
async def test_a_conversation_across_three_actors_is_one_trace(spans: InMemorySpanExporter) -> None:
    async with Ledger() as ledger, Payments(ledger) as payments, Front(payments) as front:
        assert await front.ask(Charge(card=SECRET)) == "ok"
        await ledger.ask(Tick())  # Record is handled before Tick: a FIFO barrier
    charges = [s for s in spans.get_finished_spans() if s.name == "process Charge"]
    assert len(charges) == 2
    by_actor = {s.attributes["actorio.actor.id"]: s for s in charges if s.attributes}
    front_span, payments_span = by_actor["front"], by_actor["payments"]
    record = _one(spans, "process Record")
    assert front_span.parent is None
    assert payments_span.parent is not None
    assert payments_span.parent.span_id == front_span.context.span_id
    assert record.parent is not None
    assert record.parent.span_id == payments_span.context.span_id
    assert len({front_span.context.trace_id, payments_span.context.trace_id, record.context.trace_id}) == 1
    assert payments_span.kind == SpanKind.CONSUMER  # an asked message too (messaging conventions)
    assert record.kind == SpanKind.CONSUMER
    assert record.attributes is not None
    assert record.attributes["messaging.system"] == "actorio"
    assert record.attributes["messaging.operation.name"] == "tell"
    assert record.attributes["actorio.actor.class"] == f"{__name__}.Ledger"
    assert record.attributes["actorio.message.type"] == "Record"
    assert record.attributes["actorio.outcome"] == "handled"
    for span in spans.get_finished_spans():
        assert SECRET not in repr(span.to_json())


@pytest.mark.asyncio
async def test_a_failure_is_recorded_on_its_span_with_the_supervision_decision(
    spans: InMemorySpanExporter,
) -> None:
    async with Ledger() as ledger, Payments(ledger) as payments:
        with pytest.raises(ValueError, match="audit failed"):
            await payments.ask(Audit())
    audit = _one(spans, "process Audit")
    assert audit.status.status_code == StatusCode.ERROR
    assert audit.attributes is not None
    assert audit.attributes["actorio.outcome"] == "failed"
    assert audit.attributes["error.type"] == "ValueError"
    events = {event.name: event for event in audit.events}
    assert (events["exception"].attributes or {})["exception.escaped"] == "True"
    supervision = events["actorio.supervision"].attributes
    assert supervision is not None
    assert supervision["actorio.supervision.decision"] == "raised at the asker"


class Restarting(Actor[Audit | Tick]):
    @handles(Audit)
    async def audit(self, message: Audit) -> None:
        raise ValueError("by design")

    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        pass


class Parent(Actor[Tick]):
    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        child = await self.supervise(Restarting, name="child")
        await child.tell(Audit())


@pytest.mark.asyncio
async def test_a_restart_is_an_event_on_the_failing_span(
    spans: InMemorySpanExporter,
) -> None:
    async with Parent() as parent:
        await parent.ask(Tick())
        from actorio.lowlevel import actor_of

        actor = actor_of(parent)
        assert actor is not None
        (child,) = actor.children
        await child.reference.ask(Tick())  # the new incarnation
    audit = _one(spans, "process Audit")
    events = {event.name: event.attributes for event in audit.events}
    assert events["actorio.supervision"] == {
        "actorio.supervision.decision": "restart",
        "exception.type": "ValueError",
    }
    assert audit.parent is not None
    ticks = [s for s in spans.get_finished_spans() if s.name == "process Tick"]
    in_parent = [s for s in ticks if s.attributes and s.attributes["actorio.actor.id"] != "child"]
    assert audit.parent.span_id == in_parent[0].context.span_id


class Periodic(Actor[Tick | Audit]):
    @handles(Audit)
    async def audit(self, message: Audit) -> None:
        self.start_timer("tick", Tick(), 0)

    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        pass


@pytest.mark.asyncio
async def test_a_timers_message_is_linked_to_where_the_timer_was_started(spans: InMemorySpanExporter) -> None:
    from actorio.lowlevel import actor_of, barrier

    async with Periodic() as ref:
        await ref.ask(Audit())
        actor = actor_of(ref)
        assert actor is not None
        while not [s for s in spans.get_finished_spans() if s.name == "process Tick"]:
            assert await barrier(actor)
    started = _one(spans, "process Audit")
    tick = _one(spans, "process Tick")
    assert tick.parent is None
    assert [link.context.span_id for link in tick.links] == [started.context.span_id]
    assert tick.attributes is not None
    assert tick.attributes["messaging.operation.name"] == "timer"


class Opted(Message):
    telemetry_fields: ClassVar[tuple[str, ...]] = ("region",)
    region: str
    card: str


class Counted(Message):
    telemetry_fields: ClassVar[tuple[str, ...]] = ("amount",)
    amount: int


class Shop(Actor[Opted | Counted]):
    @handles(Opted)
    async def opted(self, message: Opted) -> None:
        pass

    @handles(Counted)
    async def counted(self, message: Counted) -> None:
        pass


@pytest.mark.asyncio
async def test_only_fields_that_opt_in_are_recorded(spans: InMemorySpanExporter) -> None:
    async with Shop() as ref:
        await ref.ask(Opted(region="eu", card=SECRET))
    span = _one(spans, "process Opted")
    assert span.attributes is not None
    assert span.attributes["actorio.message.field.region"] == "eu"
    assert SECRET not in repr(span.to_json())


@pytest.mark.asyncio
async def test_an_integer_field_beyond_64_bits_is_left_out(spans: InMemorySpanExporter) -> None:
    """OTLP carries signed 64-bit integers: a larger one (a remote sender chooses it) failed the
    exporter's encoding, with a traceback logged per span."""
    async with Shop() as ref:
        for amount in (2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**400):
            await ref.ask(Counted(amount=amount))
    recorded = [
        (s.attributes or {}).get("actorio.message.field.amount")
        for s in spans.get_finished_spans()
        if s.name == "process Counted"
    ]
    assert recorded == [2**63 - 1, -(2**63), None, None, None]


class Router(Actor[Charge]):
    def __init__(self, payments: ActorRef[Charge | Audit]) -> None:
        super().__init__(identifier="router")
        self.payments = payments

    @handles(Charge)
    async def charge(self, message: Charge) -> NoReply:
        return await self.payments.forward(message)


@pytest.mark.asyncio
async def test_a_forwarded_ask_is_the_child_of_the_forwarding_handler(spans: InMemorySpanExporter) -> None:
    async with Ledger() as ledger, Payments(ledger) as payments, Router(payments) as router:
        assert await router.ask(Charge(card=SECRET)) == "ok"
        await ledger.ask(Tick())
    charges = {
        (s.attributes or {})["actorio.actor.id"]: s
        for s in spans.get_finished_spans()
        if s.name == "process Charge"
    }
    routed, served = charges["router"], charges["payments"]
    assert served.parent is not None
    assert served.parent.span_id == routed.context.span_id
    assert served.context.trace_id == routed.context.trace_id
    assert served.kind == SpanKind.CONSUMER  # it carries the ask, and answers it


class _RaisingSampler(Sampler):
    """A sampler with a fault: it raises for every span."""

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        raise RuntimeError("sampler fault")

    def get_description(self) -> str:
        return "raising"


class _RaisingProcessor(SpanProcessor):
    """A span processor with a fault on start or on end."""

    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.on == "start":
            raise RuntimeError("processor fault on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.on == "end":
            raise RuntimeError("processor fault on end")


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["sampler", "start", "end"])
async def test_telemetry_that_raises_never_fails_a_handler(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A sampler or span processor with a fault is logged (within a limit): every message is
    handled, every ask answered, nothing is a dead letter and no actor stops."""
    provider = TracerProvider(sampler=_RaisingSampler()) if fault == "sampler" else TracerProvider()
    if fault != "sampler":
        provider.add_span_processor(_RaisingProcessor(fault))
    letters: list[DeadLetter] = []
    dead_letters.add_listener(letters.append)
    instrument(tracer_provider=provider, metrics=False)
    try:
        with caplog.at_level(logging.ERROR, logger="actorio.telemetry"):
            kept = Ledger()
            async with kept as ledger, Payments(ledger) as payments:
                for _ in range(20):
                    assert await payments.ask(Charge(card="c")) == "ok"
                with pytest.raises(ValueError, match="audit failed"):  # the handler's own error
                    await payments.ask(Audit())
                await ledger.ask(Tick())
                assert kept.records == 20
    finally:
        uninstrument()
        dead_letters.remove_listener(letters.append)
    assert letters == []
    failures = [r for r in caplog.records if "telemetry failed" in r.getMessage()]
    assert 1 <= len(failures) <= 11  # the limit's 10 lines, and the count of those left out
    assert "fault" in failures[0].getMessage()


class _Started(SpanProcessor):
    """Notes each span started, weakly."""

    def __init__(self) -> None:
        self.spans: list[weakref.ref[Span]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.spans.append(weakref.ref(span))


class Keeping(Ledger):
    """Keeps every record it handles (a buffer, a log)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[Record] = []

    @handles(Record)
    async def record(self, message: Record) -> None:
        self.kept.append(message)


@pytest.mark.asyncio
async def test_a_message_kept_after_its_handling_keeps_no_span() -> None:
    """What the sender's side notes beside a message (its span's context, for the handling's
    parent) lives as long as the message: not the sender's span, ended long ago."""
    started = _Started()
    provider = TracerProvider()
    provider.add_span_processor(started)
    instrument(tracer_provider=provider, metrics=False)
    try:
        keeping = Keeping()
        async with keeping as ledger, Payments(ledger) as payments:
            for _ in range(3):
                assert await payments.ask(Charge(card="c")) == "ok"
            await ledger.ask(Tick())
        assert len(keeping.kept) == 3
        gc.collect()
        assert len(started.spans) == 7  # three charges, three records, a tick
        assert [span for span in started.spans if span() is not None] == []
    finally:
        uninstrument()


class Quitting(Actor[Tick]):
    @handles(Tick)
    async def tick(self, message: Tick) -> None:
        raise EndMainLoop()


@pytest.mark.asyncio
async def test_a_handler_that_ends_its_actor_cleanly_is_no_failure() -> None:
    """`EndMainLoop` (how a published actor is stopped, too) is control flow: its span has no
    error, its outcome is ``stopped``, and the statistics count no failure."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    count_handlers()
    try:
        quitting = Quitting()
        await quitting.start()
        await quitting.reference.tell(Tick())
        await bounded(quitting.wait())
        statistics = quitting.statistics()
    finally:
        stop_counting_handlers()
        uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.UNSET
    assert (span.attributes or {})["actorio.outcome"] == "stopped"
    assert "error.type" not in (span.attributes or {})
    assert span.events == ()
    assert (statistics.handled, statistics.failed) == (1, 0)
    data = reader.get_metrics_data()
    assert data is not None
    outcomes = [
        (point.attributes or {})["actorio.outcome"]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "actorio.messages.handled"
        for point in metric.data.data_points
    ]
    assert outcomes == ["stopped"]
