"""The benchmark runs at tiny sizes in the suite, so that it cannot rot. No figure is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import instructions, million, peers
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


def test_benchmark_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--no-uvloop", "--only", "built"]) == 0
    printed = capsys.readouterr().out
    assert "tell, built in the loop" in printed
    assert "ask, built in the loop" in printed
    assert "spawn + stop" not in printed


def test_instruction_cases_run() -> None:
    """Each case of ``python -m benchmarks.instructions`` runs (uncounted: valgrind is not needed)."""
    for run in instructions.CASES.values():
        run(20)


def test_peer_programs_build_their_messages_in_the_loop() -> None:
    """The peer programs (run with ``--peers``, each in a venv of its own) build a message for
    every tell and every ask, as actorio's benchmark does; their own modules import here."""
    for peer in peers.PEERS:
        source = (peers.PROGRAMS / peer.program).read_text()
        assert "for i in range(n)" in source or "built for each send" in source, peer.program
    assert not peers.table([], 0.001).count("error")
