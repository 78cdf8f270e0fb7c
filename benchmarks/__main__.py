"""actorio's benchmark: every scenario beside a hand-written asyncio actor, in the same process.

    python -m benchmarks                 # the full run (a few minutes on 2 cores)
    python -m benchmarks --quick         # tiny sizes: a smoke run, the figures mean nothing
    python -m benchmarks --json out.json # also write the figures as JSON
    python -m benchmarks --peers         # also measure peer libraries, each in its own venv
    python -m benchmarks --nats          # also actors on NATS beside bare nats-py (benchmarks/remote.py)
    python -m benchmarks --persistence   # also persistent actors beside bare sqlite3 and JetStream
    python -m benchmarks --entities      # also entities beside published actors (benchmarks/entities.py)
    python -m benchmarks --only built    # only the scenarios whose name contains "built"

Each row runs actorio and the baseline alternately, ``--repeat`` times, and keeps the best
figure of each. The ratio is actorio / baseline; the target says which way is better. When
uvloop is installed (``pip install uvloop``, or ``pip install '.[uvloop]'`` in the repository), the
table is printed again on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .scenarios import SCENARIOS, Scenario


@dataclass
class Row:
    """One measured scenario."""

    loop: str
    scenario: str
    unit: str
    n: int
    actorio: float
    baseline: float
    baseline_label: str
    ratio: float
    target: str
    met: bool | None


def _target_text(scenario: Scenario) -> str:
    if scenario.target is None:
        return ""
    return f"{'>=' if scenario.higher_is_better else '<='} {scenario.target:g}x"


async def _measure(scenario: Scenario, n: int, repeat: int) -> Row:
    best: dict[str, float] = {}
    pick = max if scenario.higher_is_better else min
    for _ in range(repeat):
        for side in ("actorio", "baseline"):
            figure = await scenario.run(side, n)
            best[side] = pick(best[side], figure) if side in best else figure
    ratio = best["actorio"] / best["baseline"]
    met = None
    if scenario.target is not None:
        met = ratio >= scenario.target if scenario.higher_is_better else ratio <= scenario.target
    return Row(
        loop="",
        scenario=scenario.name,
        unit=scenario.unit,
        n=n,
        actorio=best["actorio"],
        baseline=best["baseline"],
        baseline_label=scenario.baseline_label,
        ratio=ratio,
        target=_target_text(scenario),
        met=met,
    )


async def _run_all(
    scale: float, repeat: int, progress: Callable[[str], None], only: list[str] | None = None
) -> list[Row]:
    rows = []
    chosen = [s for s in SCENARIOS if not only or any(word in s.name for word in only)]
    for index, scenario in enumerate(chosen, 1):
        n = max(10, int(scenario.size * scale))
        progress(f"[{index}/{len(chosen)}] {scenario.name} (n={n:,})")
        rows.append(await _measure(scenario, n, repeat))
    return rows


def _table(title: str, rows: list[Row]) -> str:
    lines = [
        title,
        f"{'scenario':<26} {'unit':<9} {'actorio':>13} {'baseline':>13} {'ratio':>7}  {'target':<8} met",
        "-" * 86,
    ]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        label = "" if row.baseline_label == "baseline" else f"  (baseline column: {row.baseline_label})"
        lines.append(
            f"{row.scenario:<26} {row.unit:<9} {row.actorio:>13,.1f} {row.baseline:>13,.1f} "
            f"{row.ratio:>6.2f}x  {row.target:<8} {met}{label}"
        )
    return "\n".join(lines)


def _uvloop_runner() -> Callable[[Any], Any] | None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    run: Callable[[Any], Any] = uvloop.run
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the tables, write JSON if asked. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best counts")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--peers", action="store_true", help="also measure peer libraries")
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop table")
    parser.add_argument("--nats", action="store_true", help="also remote tell/ask on a local nats-server")
    parser.add_argument(
        "--persistence", action="store_true", help="also persistent actors on SQLite and JetStream (slow)"
    )
    parser.add_argument("--entities", action="store_true", help="also entities on a local nats-server")
    parser.add_argument(
        "--only", action="append", metavar="WORDS", help="only the scenarios whose name contains WORDS"
    )
    args = parser.parse_args(argv)
    scale, repeat = (0.001, 1) if args.quick else (1.0, args.repeat)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    machine = (
        f"Python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} cores), {sys.platform}"
    )
    print(f"actorio benchmark; {machine}")
    rows = asyncio.run(_run_all(scale, repeat, progress, args.only))
    for row in rows:
        row.loop = "asyncio"
    print(_table("event loop: asyncio", rows))
    uvloop_run = None if args.no_uvloop else _uvloop_runner()
    if uvloop_run is not None:
        progress("uvloop:")
        uv_rows: list[Row] = uvloop_run(_run_all(scale, repeat, progress, args.only))
        for row in uv_rows:
            row.loop = "uvloop"
        print()
        print(_table("event loop: uvloop", uv_rows))
        rows += uv_rows
    if args.nats:
        from .remote import run_nats

        progress("nats:")
        nats_rows = asyncio.run(run_nats(scale, repeat))
        print()
        print(_table("actors on NATS (same nats-server, same run)", nats_rows))
        rows += nats_rows
    if args.persistence:
        from .persistence import run_persistence

        progress("persistence:")
        persistence_rows = asyncio.run(run_persistence(scale, repeat))
        print()
        print(_table("persistent actors (same disk, same nats-server, same run)", persistence_rows))
        rows += persistence_rows
    if args.entities:
        from .entities import run_entities

        progress("entities:")
        entity_rows = asyncio.run(run_entities(scale, repeat))
        print()
        print(_table("entities on NATS, beside published actors (same nats-server, same run)", entity_rows))
        rows += entity_rows
    peers: list[dict[str, Any]] = []
    if args.peers:
        from .peers import run_peers

        peers = run_peers(scale, progress, repeat)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": machine, "rows": [asdict(r) for r in rows], "peers": peers}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
