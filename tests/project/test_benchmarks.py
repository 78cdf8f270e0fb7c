"""The benchmark runs at tiny sizes in the suite, so that it cannot rot. No figure is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import million
from benchmarks.__main__ import main
from benchmarks.scenarios import SCENARIOS


def test_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    assert main(["--quick", "--no-uvloop", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for scenario in SCENARIOS:
        assert scenario.name in printed
    figures = json.loads(out.read_text())
    assert [row["scenario"] for row in figures["rows"]] == [s.name for s in SCENARIOS]
    assert all(row["actorio"] > 0 and row["baseline"] > 0 for row in figures["rows"])


def test_million_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert million.main(["--actors", "50"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert figures["actors"] == 50
    assert figures["start_s"] > 0
    assert figures["peak_rss_mb"] > 0
