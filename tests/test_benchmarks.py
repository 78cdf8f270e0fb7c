"""The core benchmark runs at tiny sizes in the suite, so that it cannot rot. No figure is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import core


def test_core_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    assert core.main(["--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for scenario in ("tell, burst", "tell, interleaved", "ask round trip", "spawn + stop"):
        assert scenario in printed
    figures = json.loads(out.read_text())
    assert [row["scenario"] for row in figures["rows"]] == [name for name, *_ in core.SCENARIOS]
    assert all(row["actorio"] > 0 and row["baseline"] > 0 for row in figures["rows"])
