"""The NATS benchmark rows run at tiny sizes in the suite, so that they cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main


@pytest.mark.timeout(120)
def test_nats_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    # The entity rows in the same run: one quick run of the core scenarios for both.
    assert main(["--quick", "--no-uvloop", "--nats", "--entities", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "actors on NATS" in printed
    assert "entities on NATS" in printed
    rows = {row["scenario"]: row for row in json.loads(out.read_text())["rows"]}
    for name in (
        "nats remote tell",
        "nats remote tell, batched",
        "nats remote ask",
        "nats pool of 2 workers",
    ):
        assert rows[name]["actorio"] > 0
        assert rows[name]["baseline"] > 0
    for name in (
        "entity activation",
        "entity tell",
        "entity ask",
        "durable entity tell",
        "durable entity ask",
    ):
        assert rows[name]["actorio"] > 0
        assert rows[name]["baseline"] > 0
