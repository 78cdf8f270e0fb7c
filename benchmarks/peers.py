"""``python -m benchmarks --peers``: the same three scenarios measured with peer libraries.

Every library builds its messages in the sending loop, one per tell and per ask, as a program
does: actorio its validated messages, the hand-written baseline, pykka and thespian slotted
classes, tapio-py and actorio 0.1.4 their own message models.

Each peer gets its own virtual environment under ``build/bench-peers/<peer>/``, made once and
reused, with the peer installed at the version pinned below: actorio 0.1.4 has this project's
import name, and the others must not share this interpreter's packages either. Its program in
``benchmarks/peer_programs/`` runs with that venv's python, in a subprocess bounded by a timeout,
and prints one JSON line of figures. A peer that fails to install or to run gives a row with an
``error`` instead of figures; nothing here raises.

Every library runs ``repeat`` times, in rounds (each round runs every peer, then actorio and the
baseline), and each figure is the best of its runs, as the scenario table's are: one run of a
threaded peer can be three times slower than the next (how its threads are scheduled).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import actorio

from .scenarios import ask_built, spawn_stop, tell_built, tell_built_gc_policy

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "build" / "bench-peers"
PROGRAMS = Path(__file__).resolve().parent / "peer_programs"

SIZES = {"tell": 200_000, "ask": 20_000, "spawn_stop": 5_000}
"""Full sizes; every peer program uses the same (and the same ``max(10, size * scale)``)."""

INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Peer:
    """A peer library: its venv's name, what pip installs, and its program."""

    name: str
    requirement: str
    program: str


PEERS = [
    Peer("tapio", "tapio-py==0.18.0", "peer_tapio.py"),
    Peer("pykka", "pykka==4.5.0", "peer_pykka.py"),
    Peer("thespian", "thespian==4.0.1", "peer_thespian.py"),
    Peer("actorio-0.1.4", "actorio==0.1.4", "peer_actorio014.py"),
]

FIGURES = ("tell_burst_msg_per_s", "ask_us", "spawn_stop_us")


def _sizes(scale: float) -> dict[str, int]:
    return {key: max(10, int(size * scale)) for key, size in SIZES.items()}


def _run_timeout(scale: float) -> float:
    return 60.0 + 300.0 * scale


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _clean_env() -> dict[str, str]:
    """This process's environment without what would point a venv's python at this project."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _install(peer: Peer, progress: Callable[[str], None]) -> Path:
    """The venv's python, the peer installed in it; raises `RuntimeError` with one line if not."""
    env_dir = VENVS / peer.name
    python = _python(env_dir)
    marker = env_dir / "installed.txt"
    if python.exists() and marker.exists() and marker.read_text().strip() == peer.requirement:
        return python
    progress(f"  installing {peer.requirement} into {env_dir.relative_to(ROOT)}")
    try:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", peer.requirement],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            env=_clean_env(),
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip install {peer.requirement} took over {INSTALL_TIMEOUT:g} s") from None
    except Exception as error:
        raise RuntimeError(f"venv for {peer.name}: {type(error).__name__}: {error}") from error
    if done.returncode != 0:
        raise RuntimeError(f"pip install {peer.requirement} failed: {_one_line(done.stderr)}")
    marker.write_text(peer.requirement + "\n")
    return python


def _pump(stream: IO[str], keep: list[str], forward: Callable[[str], None] | None) -> None:
    for line in stream:
        keep.append(line)
        if forward is not None and line.strip():
            forward(line.rstrip())


def _measure(peer: Peer, python: Path, scale: float, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the peer's program; its JSON line, or raises `RuntimeError` with one line."""
    timeout = _run_timeout(scale)
    command = [str(python), "-I", str(PROGRAMS / peer.program), "--scale", repr(scale)]
    out: list[str] = []
    err: list[str] = []
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=python.parent,
        env=_clean_env(),
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(process.stdout, out, None), daemon=True),
            threading.Thread(
                target=_pump, args=(process.stderr, err, lambda line: progress(f"    {line}")), daemon=True
            ),
        ]
        for pump in pumps:
            pump.start()
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"timed out after {timeout:g} s") from None
        except BaseException:  # interrupted: the peer's process does not outlive the benchmark
            process.kill()
            process.wait()
            raise
        finally:
            for pump in pumps:
                pump.join(5)
    if code != 0:
        raise RuntimeError(f"exit code {code}: {_one_line(''.join(err))}")
    for line in reversed(out):
        if line.startswith("{"):
            try:
                figures: dict[str, Any] = json.loads(line)
            except ValueError:
                break
            return figures
    raise RuntimeError(f"no JSON line in its output: {_one_line(''.join(out) or ''.join(err))}")


def _peer_row(peer: Peer, scale: float, progress: Callable[[str], None]) -> dict[str, Any]:
    try:
        python = _install(peer, progress)
        progress(f"  measuring {peer.requirement}")
        return _measure(peer, python, scale, progress)
    except Exception as error:  # a peer never stops the run: its row says what went wrong
        return {"peer": peer.requirement, "error": str(error) or type(error).__name__}


def _own_rows(scale: float) -> list[dict[str, Any]]:
    """actorio (this checkout) and the hand-written baseline, in this process, at the peers' sizes."""
    sizes = _sizes(scale)
    rows = []
    own = f"actorio {getattr(actorio, '__version__', '')} (this checkout)"
    for side, label in (("actorio", own), ("baseline", "hand-written baseline")):
        rows.append(
            {
                "peer": label,
                "tell_burst_msg_per_s": asyncio.run(tell_built(side, sizes["tell"])),
                "ask_us": asyncio.run(ask_built(side, sizes["ask"])),
                "spawn_stop_us": asyncio.run(spawn_stop(side, sizes["spawn_stop"])),
                "note": "asyncio, measured in this process, CPython's default collector"
                + ("; slotted messages" if side == "baseline" else ""),
            }
        )
    rows.append(
        {
            "peer": f"{own.split(' (')[0]} under run()",
            "tell_burst_msg_per_s": asyncio.run(tell_built_gc_policy("actorio", sizes["tell"])),
            "note": "tell only: the same, under actorio.run's GC policy (GcPolicy())",
        }
    )
    return rows


def _cell(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def table(rows: list[dict[str, Any]], scale: float, repeat: int = 1) -> str:
    """The figures, one library a line, with each row's note or error below it."""
    sizes = _sizes(scale)
    runs = "one run each" if repeat == 1 else f"the best of {repeat} runs each"
    lines = [
        f"peers (tell n={sizes['tell']:,}, ask n={sizes['ask']:,}, spawn + stop n={sizes['spawn_stop']:,}; "
        f"{runs}; messages built in the loop)",
        f"{'library':<30} {'tell, msg/s':>13} {'ask, us':>9} {'spawn+stop, us':>15}",
        "-" * 70,
    ]
    for row in rows:
        lines.append(
            f"{row['peer']:<30} {_cell(row.get('tell_burst_msg_per_s'), ',.0f'):>13} "
            f"{_cell(row.get('ask_us'), ',.1f'):>9} {_cell(row.get('spawn_stop_us'), ',.1f'):>15}"
        )
        if "error" in row:
            lines.append(f"    error: {row['error']}")
        elif row.get("note"):
            lines.append(f"    {row['note']}")
    return "\n".join(lines)


BETTER = {"tell_burst_msg_per_s": max, "ask_us": min, "spawn_stop_us": min}
"""How two runs' figures combine: the best of them (most messages, fewest microseconds)."""


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a library's runs: each figure the best of the runs that gave it (a failed
    run's ``error`` is kept only if no run gave a figure), ``runs`` the number of runs."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[-1]
    row = dict(good[-1])
    for figure, better in BETTER.items():
        values = [run[figure] for run in good if isinstance(run.get(figure), (int, float))]
        if values:
            row[figure] = better(values)
    row["runs"] = len(good)
    return row


def run_peers(scale: float, progress: Callable[[str], None], repeat: int = 1) -> list[dict[str, Any]]:
    """Measure every peer that installs and runs, ``repeat`` times in alternating rounds; print
    their table (each figure the best of its runs) beside actorio's own figures.

    Returns one dict per peer: its figures (``tell_burst_msg_per_s``, ``ask_us``,
    ``spawn_stop_us``, ``n``, ``note``, ``runs``) or an ``error``.
    """
    runs: list[list[dict[str, Any]]] = [[] for _ in PEERS]
    own_runs: dict[str, list[dict[str, Any]]] = {}  # by label: a failed round gives other rows
    for round_ in range(1, repeat + 1):
        for index, peer in enumerate(PEERS):
            progress(f"[peers {index + 1}/{len(PEERS)}, run {round_}/{repeat}] {peer.requirement}")
            runs[index].append(_peer_row(peer, scale, progress))
        progress(f"[peers, run {round_}/{repeat}] actorio and the baseline at the same sizes")
        try:
            own = _own_rows(scale)
        except Exception as error:
            own = [{"peer": "actorio (this checkout)", "error": f"{type(error).__name__}: {error}"}]
        for row in own:
            own_runs.setdefault(row["peer"], []).append(row)
    rows = [best_of(peer_runs) for peer_runs in runs]
    print()
    print(table([best_of(kept) for kept in own_runs.values()] + rows, scale, repeat), flush=True)
    return rows
