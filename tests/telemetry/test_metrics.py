"""Metrics through the OpenTelemetry SDK, scraped over HTTP from the Prometheus exporter."""

from __future__ import annotations

import asyncio
import gc
import urllib.request
import weakref
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from prometheus_client import REGISTRY, start_http_server

from actorio import (
    Actor,
    ActorStopped,
    Message,
    RestartIntensityExceeded,
    SupervisorStrategy,
    dead_letters,
    handles,
)
from actorio.telemetry import _instrument, instrument, uninstrument
from tests.support import bounded


class Work(Message[int]):
    n: int


class Slow(Message[int]):
    pass


class Fail(Message):
    pass


class Worker(Actor[Work | Slow | Fail]):
    def __init__(self) -> None:
        super().__init__(identifier="worker")
        self.release = asyncio.Event()

    @handles(Work)
    async def work(self, message: Work) -> int:
        return message.n

    @handles(Slow)
    async def slow(self, message: Slow) -> int:
        await self.release.wait()
        return 0

    @handles(Fail)
    async def fail(self, message: Fail) -> None:
        raise ValueError("no")


@pytest.fixture
def scrape_url() -> Iterator[str]:
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    server, thread = start_http_server(0, addr="127.0.0.1")
    instrument(meter_provider=provider, traces=False)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        uninstrument()
        server.shutdown()
        server.server_close()
        thread.join(5)
        provider.shutdown()
        for collector in list(REGISTRY._collector_to_names):
            if collector is reader._collector:
                REGISTRY.unregister(collector)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _value(text: str, name: str, *labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(label in line for label in labels):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} with {labels} in:\n{text}")


@pytest.mark.asyncio
async def test_the_metrics_are_scraped_over_http(scrape_url: str) -> None:
    worker = Worker()
    async with worker as ref:
        for n in range(3):
            assert await ref.ask(Work(n=n)) == n
        with pytest.raises(ValueError, match="no"):
            await ref.ask(Fail())
        with pytest.raises(asyncio.TimeoutError):
            await ref.ask(Slow(), timeout=0.01)
        ref.tell_nowait(Work(n=9))
        ref.tell_nowait(Work(n=9))
        during = await asyncio.to_thread(_scrape, scrape_url)
        worker.release.set()
        assert await ref.ask(Work(n=1)) == 1
    with pytest.raises(ActorStopped):
        await ref.ask(Work(n=1))
    ref.tell_nowait(Work(n=2))  # a dead letter: told to a stopped actor
    text = await asyncio.to_thread(_scrape, scrape_url)
    handled = "actorio_messages_handled_total"
    worker_class = f'actorio_actor_class="{__name__}.Worker"'
    assert (
        _value(text, handled, worker_class, 'actorio_message_type="Work"', 'actorio_outcome="handled"') == 6
    )
    assert _value(text, handled, 'actorio_message_type="Fail"', 'actorio_outcome="failed"') == 1
    assert _value(text, "actorio_handler_duration_seconds_count", worker_class, '"Work"') == 6
    # Buckets in seconds (the SDK's default ones are for milliseconds: 5 is its second bound).
    assert _value(text, "actorio_handler_duration_seconds_bucket", worker_class, '"Work"', 'le="0.0001"') <= 6
    assert _value(text, "actorio_handler_duration_seconds_bucket", worker_class, '"Work"', 'le="10.0"') == 6
    assert _value(text, "actorio_asks_timed_out_total") == 1
    assert _value(text, "actorio_asks_in_flight") == 0
    assert _value(during, "actorio_mailbox_depth", worker_class) == 2
    assert _value(text, "actorio_dead_letters_total", 'actorio_dead_letter_reason="stopped"') == 1
    assert len(dead_letters.of(reason="stopped")) == 1


class Crash(Message[int]):
    pass


class Flaky(Actor[Crash | Work]):
    @handles(Crash)
    async def crash(self, message: Crash) -> int:
        raise ValueError("crash")

    @handles(Work)
    async def work(self, message: Work) -> int:
        return message.n


class Keeper(Actor):
    supervisor_strategy = SupervisorStrategy(max_restarts=1, within=60.0)


@pytest.mark.asyncio
async def test_restarts_count_what_the_supervisor_did_not_what_it_would_do(scrape_url: str) -> None:
    """Two failures under ``max_restarts=1``: the first is answered by a restart, the second makes
    the supervisor give up (`RestartIntensityExceeded`): one restart counted, not two."""
    keeper = Keeper()
    await keeper.start()
    child = await keeper.supervise(Flaky, name="flaky")
    await child.tell(Crash())
    assert await child.ask(Work(n=1)) == 1  # behind the crash: the next incarnation answers
    await child.tell(Crash())
    with pytest.raises(RestartIntensityExceeded):
        await keeper.wait()
    text = await asyncio.to_thread(_scrape, scrape_url)
    assert _value(text, "actorio_restarts_total", f'actorio_actor_class="{__name__}.Flaky"') == 1


class Stuck(Actor[Slow | Work]):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @handles(Slow)
    async def slow(self, message: Slow) -> int:
        self.entered.set()
        await self.release.wait()
        return 0

    @handles(Work)
    async def work(self, message: Work) -> int:
        return message.n


@pytest.mark.asyncio
async def test_the_depth_gauge_sees_an_actor_stuck_in_its_first_handler(scrape_url: str) -> None:
    stuck = Stuck()
    async with stuck as ref:
        ref.tell_nowait(Slow())
        await stuck.entered.wait()
        for n in range(3):
            ref.tell_nowait(Work(n=n))
        text = await asyncio.to_thread(_scrape, scrape_url)
        stuck.release.set()
    assert _value(text, "actorio_mailbox_depth", f'actorio_actor_class="{__name__}.Stuck"') == 3


def _observed(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, object], ...], float]:
    """The values of the metric ``name`` that ``reader`` collects now, by their attributes."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        tuple(sorted((point.attributes or {}).items())): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if isinstance(point, NumberDataPoint)
    }


@pytest.mark.asyncio
async def test_instrumenting_again_on_the_same_meter_keeps_the_observable_instruments() -> None:
    """The SDK gives a second `instrument` the observable instruments of the first (on the same
    meter) and drops its callbacks: the handled counter and the depth gauge go on counting, and
    the first call's `Metrics` is released with it."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(meter_provider=provider, traces=False)
    try:
        async with Flaky() as ref:
            assert await ref.ask(Work(n=1)) == 1
        first = weakref.ref(_instrument._current.metrics)
        uninstrument()
        instrument(meter_provider=provider, traces=False)
        gc.collect()
        assert first() is None
        stuck = Stuck()
        async with stuck as stuck_ref:
            stuck_ref.tell_nowait(Slow())
            await bounded(stuck.entered.wait())
            for n in range(2):
                stuck_ref.tell_nowait(Work(n=n))
            depths = _observed(reader, "actorio.mailbox.depth")
            stuck.release.set()
        async with Flaky() as ref:
            assert await ref.ask(Work(n=2)) == 2
    finally:
        uninstrument()
    handled = _observed(reader, "actorio.messages.handled")
    flaky_work = (
        ("actorio.actor.class", f"{__name__}.Flaky"),
        ("actorio.message.type", "Work"),
        ("actorio.outcome", "handled"),
    )
    assert handled[flaky_work] == 2
    assert depths == {(("actorio.actor.class", f"{__name__}.Stuck"),): 2}


class Fetching(Actor[Work | Slow]):
    """Its handler's own I/O times out (``Work``); ``Slow`` waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    @handles(Work)
    async def work(self, message: Work) -> int:
        raise asyncio.TimeoutError("the handler's own wait")

    @handles(Slow)
    async def slow(self, message: Slow) -> int:
        await self.release.wait()
        return 0


@pytest.mark.asyncio
async def test_only_an_asks_own_timeout_counts_as_timed_out() -> None:
    reader = InMemoryMetricReader()
    instrument(meter_provider=MeterProvider(metric_readers=[reader]), traces=False)
    try:
        fetching = Fetching()
        async with fetching as ref:
            for timeout in (None, 5.0):  # raised by the handler, within the ask's timeout or none
                with pytest.raises(asyncio.TimeoutError, match="the handler's own wait"):
                    await ref.ask(Work(n=1), timeout=timeout)
            with pytest.raises(asyncio.TimeoutError, match="no reply"):  # the ask's own
                await ref.ask(Slow(), timeout=0.01)
            fetching.release.set()
    finally:
        uninstrument()
    assert _observed(reader, "actorio.asks.timed_out") == {(): 1}
