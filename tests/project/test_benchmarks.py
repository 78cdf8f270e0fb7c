"""The benchmark runs at tiny sizes in the suite, so that it cannot rot. No figure is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def test_a_peers_figures_are_the_best_of_its_runs() -> None:
    """``--peers --repeat N``: each figure is the best of the runs that gave one (most messages
    per second, fewest microseconds); a failed run does not count, unless every run failed."""
    runs: list[dict[str, Any]] = [
        {"peer": "p", "tell_burst_msg_per_s": 100.0, "ask_us": 9.0, "spawn_stop_us": 30.0},
        {"peer": "p", "error": "timed out"},
        {"peer": "p", "tell_burst_msg_per_s": 300.0, "ask_us": 12.0, "spawn_stop_us": 20.0},
    ]
    best = peers.best_of(runs)
    assert (best["tell_burst_msg_per_s"], best["ask_us"], best["spawn_stop_us"]) == (300.0, 9.0, 20.0)
    assert best["runs"] == 2
    assert "error" not in best
    assert peers.best_of([{"peer": "p", "error": "x"}, {"peer": "p", "error": "y"}]) == {
        "peer": "p",
        "error": "y",
    }
    only_tell = peers.best_of(
        [{"peer": "q", "tell_burst_msg_per_s": 5.0}, {"peer": "q", "tell_burst_msg_per_s": 7.0}]
    )
    assert only_tell == {"peer": "q", "tell_burst_msg_per_s": 7.0, "runs": 2}
    assert "the best of 3 runs each" in peers.table([best], 0.001, 3)
