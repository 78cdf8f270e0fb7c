"""One trace across a NATS hop: the sending code's context travels as W3C ``traceparent`` /
``tracestate`` headers, and hostile trace headers are ignored where they enter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from actorio import Actor, ActorRef, Message, handles
from actorio.nats import ActorNotFound, Node, RemoteError
from actorio.telemetry import instrument, uninstrument
from actorio.telemetry._tracing import extract_w3c
from tests.support import BOUND, bounded

PARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"

pytestmark = pytest.mark.asyncio(loop_scope="function")

CARD = "4111-1111-1111-1111"


class Charge(Message[str]):
    card: str


class Record(Message):
    card: str


class Count(Message[int]):
    pass


class Ledger(Actor[Record | Count]):
    def __init__(self) -> None:
        super().__init__(identifier="ledger")
        self.records = 0

    @handles(Record)
    async def record(self, message: Record) -> None:
        self.records += 1

    @handles(Count)
    async def count(self, message: Count) -> int:
        return self.records


class Payments(Actor[Charge]):
    def __init__(self, ledger: ActorRef[Record | Count]) -> None:
        super().__init__(identifier="payments")
        self.ledger = ledger

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        await self.ledger.tell(Record(card=message.card))
        return "ok"


class Front(Actor[Charge]):
    def __init__(self, payments: ActorRef[Charge]) -> None:
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


async def test_a_conversation_over_nats_is_one_trace(nats_url: str, spans: InMemorySpanExporter) -> None:
    # Two nodes: the front and the ledger on one, the payments on the other; each hop goes over NATS.
    async with (
        await Node.connect(nats_url) as here,
        await Node.connect(nats_url) as there,
        Ledger() as ledger,
    ):
        await there.publish("ledger", ledger)
        remote_ledger = here.ref("ledger", Ledger)
        async with Payments(remote_ledger) as payments_ref:
            await here.publish("payments", payments_ref)
            async with Front(there.ref("payments", Payments)) as front:
                assert await front.ask(Charge(card=CARD)) == "ok"
                assert await remote_ledger.ask(Count()) == 1  # the Record was handled before
    finished = spans.get_finished_spans()
    by_name = {(s.name, (s.attributes or {}).get("actorio.actor.id")): s for s in finished}
    front_span = by_name[("process Charge", "front")]
    payments_span = by_name[("process Charge", "payments")]
    record_span = by_name[("process Record", "ledger")]
    (asking,) = [s for s in finished if s.name == "ask payments"]  # the front's remote ask
    assert asking.kind == SpanKind.PRODUCER
    assert asking.attributes == {
        "messaging.system": "nats",
        "messaging.operation.name": "ask",
        "messaging.operation.type": "send",
        "messaging.destination.name": "payments",
    }
    assert front_span.parent is None
    assert asking.parent is not None
    assert asking.parent.span_id == front_span.context.span_id
    assert payments_span.parent is not None
    assert payments_span.parent.span_id == asking.context.span_id
    assert payments_span.parent.is_remote
    assert record_span.parent is not None
    assert record_span.parent.span_id == payments_span.context.span_id
    assert {front_span.context.trace_id, payments_span.context.trace_id, record_span.context.trace_id} == {
        front_span.context.trace_id
    }
    for span in finished:
        assert CARD not in repr(span.to_json())


async def test_hostile_trace_headers_are_ignored(nats_url: str, spans: InMemorySpanExporter) -> None:
    async with await Node.connect(nats_url) as node, Ledger() as ledger_ref:
        await node.publish("ledger", ledger_ref)
        raw = await nats.connect(nats_url)
        body = b'{"type": "Record", "data": {"card": "x"}}'
        for headers in (
            {"traceparent": "00-zz-not-a-trace"},
            {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=" + "v" * 100_000},
            {"traceparent": "\x00" * 500},
        ):
            await raw.publish("actorio.actor.ledger", body, headers=headers)
        # Twice: nats-py writes the first flush's PING straight to the socket, possibly ahead of
        # the buffered PUBs; the second PONG comes once the server has routed them all.
        await raw.flush()
        await raw.flush()
        await raw.close()
        assert await node.ref("ledger", Ledger).ask(Count()) == 3
    records = [s for s in spans.get_finished_spans() if s.name == "process Record"]
    assert len(records) == 3
    assert records[0].parent is None
    assert records[2].parent is None
    assert records[1].parent is not None  # a valid traceparent is kept, the long tracestate dropped
    assert len(records[1].context.trace_state) == 0


async def test_a_message_without_a_trace_context_starts_a_trace(
    nats_url: str, spans: InMemorySpanExporter
) -> None:
    """nats-py runs a subscription's callbacks in a task that copied the context of the code that
    subscribed (here, a span current while publishing or hosting): a message from the wire whose
    headers carry no valid context (none, a malformed one, a batch's pieces, a stored message)
    is the root of a new trace, never a child of that span."""
    publisher = TracerProvider().get_tracer("test")
    async with (
        await Node.connect(nats_url) as node,
        await Node.connect(nats_url) as client,
        Ledger() as ledger,
        Ledger() as stored,
    ):
        with publisher.start_as_current_span("publishing") as publishing:
            await node.publish("ledger", ledger)
            await node.publish("stored-ledger", stored, durable=True)
            await node.host(Tally, name="tally", lease=5.0)
            await node.host(Tally, name="stored-tally", lease=5.0, durable=True)
        raw = await nats.connect(nats_url)
        body = b'{"type": "Record", "data": {"card": "x"}}'
        await raw.publish("actorio.actor.ledger", body)  # no headers
        await raw.publish("actorio.actor.ledger", body, headers={"traceparent": "00-zz-not-a-trace"})
        await bounded(raw.request("actorio.actor.ledger", b'{"type": "Count", "data": {}}', timeout=BOUND))
        await raw.close()
        remote = client.ref("ledger", Ledger)
        for _ in range(3):  # queued together: one batch
            remote.tell_nowait(Record(card="x"))
        assert await remote.ask(Count()) == 5
        durable = client.ref("stored-ledger", Ledger, durable=True)
        await durable.tell(Record(card="x"))
        assert await durable.ask(Count()) == 1
        for name in ("tally", "stored-tally"):
            entity = client.entity(name, "k", Tally)
            await entity.tell(Record(card="x"))
            assert await entity.ask(Count(), timeout=20) == 1
    finished = spans.get_finished_spans()
    asks = {s.context.span_id for s in finished if s.kind == SpanKind.PRODUCER}  # a node's remote asks
    handled = [s for s in finished if s.name in ("process Record", "process Count")]
    assert len(handled) == 13
    for span in handled:
        # A root, or the child of a remote ask's own span (made outside any span here).
        assert span.parent is None or span.parent.span_id in asks, (span.name, span.attributes)
        assert span.context.trace_id != publishing.get_span_context().trace_id
    assert sum(span.parent is None for span in handled) == 9


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": PARENT, "tracestate": "ok=1,\x1b[2Jbad member\x1b[31m"},
        {"traceparent": PARENT, "tracestate": ",".join(f"k{n}=v" for n in range(33))},
        {"traceparent": PARENT, "tracestate": "k=1,k=2"},
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01-" + "x" * 600},
        {"traceparent": "01-" + "a" * 32 + "-" + "b" * 16 + "-01" + "x" * 600},
        {"traceparent": "\x1b[2J" * 200},
    ],
    ids=["malformed-member", "33-members", "duplicate-key", "long-00", "long-01", "escapes"],
)
async def test_hostile_trace_headers_log_nothing(
    headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """OpenTelemetry's propagator logs a WARNING, with the value, for each malformed or too long
    header it reads: one per hostile message, unlimited, raw control characters included. They
    are dropped before it reads them: a bad tracestate alone, a bad traceparent with both."""
    caplog.set_level(logging.DEBUG)
    with extract_w3c(headers) as context:
        kept = trace.get_current_span().get_span_context()
    assert caplog.records == []
    if headers["traceparent"] == PARENT:  # the traceparent is kept, the tracestate dropped
        assert context is not None
        assert kept.trace_id == int("a" * 32, 16)
        assert len(kept.trace_state) == 0
    else:  # a new context: no span, not the one current around the block
        assert context is not None
        assert not kept.is_valid


@pytest.mark.parametrize(
    "parent",
    [PARENT, "01-" + "a" * 32 + "-" + "b" * 16 + "-01", "cc-" + "a" * 32 + "-" + "b" * 16 + "-01-future-x"],
    ids=["00", "01", "cc-with-a-field"],
)
async def test_a_traceparent_of_any_version_but_ff_is_kept(parent: str) -> None:
    """W3C asks a receiver to read a later version's first fields as version 00's."""
    with extract_w3c({"traceparent": parent}) as context:
        kept = trace.get_current_span().get_span_context()
    assert context is not None
    assert kept.trace_id == int("a" * 32, 16)
    around = TracerProvider().get_tracer("test").start_as_current_span("around")
    with around, extract_w3c({"traceparent": "ff" + parent[2:]}):  # a new trace, not the span around
        assert not trace.get_current_span().get_span_context().is_valid


async def test_a_valid_tracestate_is_kept() -> None:
    with extract_w3c({"traceparent": PARENT, "tracestate": "k=v, t@vendor=x-1 ,,a=b"}):
        state = trace.get_current_span().get_span_context().trace_state
    assert dict(state) == {"k": "v", "t@vendor": "x-1", "a": "b"}


async def test_nats_traffic_and_errors_are_counted(nats_url: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    reader = InMemoryMetricReader()
    instrument(meter_provider=MeterProvider(metric_readers=[reader]), traces=False)
    try:
        async with await Node.connect(nats_url) as node, Ledger() as ledger_ref:
            await node.publish("ledger", ledger_ref)
            remote = node.ref("ledger", Ledger)
            await remote.tell(Record(card="x"))
            await remote.tell_payload({"type": "Record", "data": {"card": 7}})  # invalid at the receiver
            assert await remote.ask(Count()) == 1
    finally:
        uninstrument()
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[str, tuple[tuple[str, object], ...]], float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, NumberDataPoint):
                        key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                        points[key] = point.value
    nats_tell = (("messaging.operation.name", "tell"), ("messaging.system", "nats"))
    nats_ask = (("messaging.operation.name", "ask"), ("messaging.system", "nats"))
    assert points[("messaging.client.sent.messages", nats_tell)] == 2
    assert points[("messaging.client.sent.messages", nats_ask)] == 1
    assert points[("messaging.client.consumed.messages", nats_tell)] == 2
    assert points[("messaging.client.consumed.messages", nats_ask)] == 1
    assert (
        points[("actorio.transport.errors", (("error.type", "invalid"), ("messaging.system", "nats")))] == 1
    )


async def test_a_durable_tell_keeps_the_senders_trace(nats_url: str, spans: InMemorySpanExporter) -> None:
    from opentelemetry.sdk.trace import TracerProvider as SenderProvider

    sender = SenderProvider().get_tracer("test")  # the code that tells: a span of its own
    async with await Node.connect(nats_url) as node, Ledger() as ledger:
        await node.publish("durable-ledger", ledger, durable=True)
        remote = node.ref("durable-ledger", Ledger, durable=True)
        with sender.start_as_current_span("checkout") as checkout:
            await remote.tell(Record(card="x"))
        assert await remote.ask(Count()) == 1
    (record,) = [s for s in spans.get_finished_spans() if s.name == "process Record"]
    assert record.parent is not None
    assert record.parent.span_id == checkout.get_span_context().span_id
    assert record.parent.is_remote


def _points(reader: Any, name: str) -> list[Any]:
    """The data points of the metric ``name`` that ``reader`` (an InMemoryMetricReader) holds."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


class Tally(Ledger):
    """An entity: a ledger per key."""

    def __init__(self, key: str) -> None:
        super().__init__()


@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
async def test_entity_messages_keep_the_senders_trace_and_are_counted(nats_url: str, durable: bool) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    sender = TracerProvider().get_tracer("test")  # the code that sends: a span of its own
    try:
        async with await Node.connect(nats_url) as hosting, await Node.connect(nats_url) as client:
            await hosting.host(Tally, name=f"tally-{durable}", lease=5.0, durable=durable)
            ref = client.entity(f"tally-{durable}", "k", Tally)
            with sender.start_as_current_span("checkout") as checkout:
                await ref.tell(Record(card="x"))
                ref.tell_nowait(Record(card="y"))
                await ref.tell_payload({"type": "Record", "data": {"card": "z"}})
                assert await ref.ask(Count(), timeout=20) == 3
    finally:
        uninstrument()
    finished = exporter.get_finished_spans()
    (asking,) = [s for s in finished if s.name == f"ask tally-{durable}"]
    assert asking.kind == SpanKind.PRODUCER
    assert (asking.attributes or {})["messaging.destination.name"] == f"tally-{durable}/k"
    assert (asking.attributes or {})["messaging.destination.template"] == f"tally-{durable}"
    assert asking.parent is not None
    assert asking.parent.span_id == checkout.get_span_context().span_id
    handled = [s for s in finished if s.name in ("process Record", "process Count")]
    assert len(handled) == 4
    for span in handled:
        assert span.parent is not None, span.name
        asked = span.name == "process Count"  # (asking's context is a SpanContext, not None)
        parent = asking.get_span_context() if asked else checkout.get_span_context()
        assert parent is not None
        assert span.parent.span_id == parent.span_id
        assert span.parent.is_remote
    sent = {
        (point.attributes or {}).get("messaging.operation.name"): point.value
        for point in _points(reader, "messaging.client.sent.messages")
        if isinstance(point, NumberDataPoint)
    }
    assert sent == {"tell": 3, "ask": 1}


class Faulty(Actor[Charge | Count]):
    """Raises on a charge; answers a count only once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    @handles(Charge)
    async def charge(self, message: Charge) -> str:
        raise ValueError("declined")

    @handles(Count)
    async def count(self, message: Count) -> int:
        await self.release.wait()
        return 0


async def test_remote_asks_are_producer_spans_with_their_errors_and_durations(nats_url: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        held = Faulty()
        async with await Node.connect(nats_url) as node, Ledger() as ledger, held as faulty:
            await node.publish("ledger", ledger)
            await node.publish("faulty", faulty)
            assert await node.ref("ledger", Ledger).ask(Count()) == 0
            with pytest.raises(RemoteError, match="declined"):
                await node.ref("faulty", Faulty).ask(Charge(card="x"))
            with pytest.raises(asyncio.TimeoutError):
                await node.ref("faulty", Faulty).ask(Count(), timeout=0.2)
            with pytest.raises(asyncio.TimeoutError):  # the ask is cancelled: not its failure
                await asyncio.wait_for(node.ref("faulty", Faulty).ask(Count()), 0.2)
            held.release.set()
            with pytest.raises(ActorNotFound):
                await node.ref("nobody", Ledger).ask(Count())
    finally:
        uninstrument()
    clients = {
        (s.name, (s.attributes or {}).get("error.type")): s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.PRODUCER
    }
    assert set(clients) == {
        ("ask ledger", None),
        ("ask faulty", "RemoteError"),
        ("ask faulty", "TimeoutError"),
        ("ask nobody", "ActorNotFound"),
        ("ask faulty", None),  # cancelled by wait_for
    }
    assert (clients[("ask faulty", None)].attributes or {})["actorio.outcome"] == "cancelled"
    for (_, error), span in clients.items():
        assert span.status.status_code == (StatusCode.UNSET if error is None else StatusCode.ERROR)
        escaped = [
            (e.attributes or {}).get("exception.escaped") for e in span.events if e.name == "exception"
        ]
        assert escaped == ([] if error is None else ["True"])
    durations = {
        tuple(sorted((point.attributes or {}).items())): point
        for point in _points(reader, "messaging.client.operation.duration")
        if isinstance(point, HistogramDataPoint)
    }
    base = (("messaging.operation.name", "ask"), ("messaging.system", "nats"))
    assert set(durations) == {
        (("messaging.destination.name", "ledger"), *base),
        (("error.type", "RemoteError"), ("messaging.destination.name", "faulty"), *base),
        (("error.type", "TimeoutError"), ("messaging.destination.name", "faulty"), *base),
        (("error.type", "ActorNotFound"), ("messaging.destination.name", "nobody"), *base),
    }
    assert all(point.count == 1 for point in durations.values())
    timed_out = (("error.type", "TimeoutError"), ("messaging.destination.name", "faulty"), *base)
    assert durations[timed_out].sum >= 0.2
