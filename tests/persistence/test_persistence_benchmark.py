"""The persistence benchmark rows (``python -m benchmarks --persistence``) run at tiny sizes in the
suite, so that they cannot rot. No figure is asserted."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.persistence import run_persistence


@pytest.mark.timeout(120)
def test_persistence_benchmark_smoke(nats_url: str) -> None:
    rows = {row.scenario: row for row in asyncio.run(run_persistence(0.001, 1, nats_url))}
    assert sorted(rows) == [
        "jetstream journal, 100 per append",
        "jetstream persist, 1 actor",
        "jetstream persist, 10 actors",
        "jetstream persist, 100 per ask",
        "jetstream recovery",
        "sqlite journal, 100 per append",
        "sqlite persist, 1 actor",
        "sqlite persist, 10 actors",
        "sqlite persist, 100 per ask",
        "sqlite recovery",
    ]
    for row in rows.values():
        assert row.actorio > 0
        assert row.baseline > 0
