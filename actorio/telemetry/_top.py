"""``python -m actorio top URL``: a live view of a running system, read from its snapshot
endpoint (`serve_snapshots`), refreshed in the terminal with Rich.

Each row is an actor of the tree, indented under its parent: its class, the messages queued,
messages handled a second and the mean time in its handler over the last interval, the median
and 99th percentile of its last 256 handler times, handled and failed counts, restarts, and the
message it is handling now. The header says which process it
is and how many dead letters it has recorded.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, TextIO, cast

__all__ = ["MAX_RESPONSE", "fetch", "render", "run_top"]

MAX_RESPONSE = 16 * 1024 * 1024
"""The most bytes read of a snapshot."""


def fetch(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The snapshot document at ``url``. Raises ``OSError`` (unreachable) or ``ValueError`` (not a
    snapshot)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # an address the user gave
        body = response.read(MAX_RESPONSE + 1)
    if len(body) > MAX_RESPONSE:
        raise ValueError(f"the snapshot is larger than {MAX_RESPONSE} bytes")
    document: Any = json.loads(body)
    if not isinstance(document, dict) or not isinstance(cast("dict[str, Any]", document).get("tree"), dict):
        raise ValueError("not a snapshot document (no tree)")
    return cast("dict[str, Any]", document)


def _walk(node: dict[str, Any], depth: int = 0, path: str = "") -> Iterator[tuple[int, str, dict[str, Any]]]:
    key = f"{path}/{node.get('identifier')}"
    yield depth, key, node
    children: Any = node.get("children") or ()
    for child in children:
        if isinstance(child, dict):
            yield from _walk(cast("dict[str, Any]", child), depth + 1, key)


def render(document: dict[str, Any], previous: dict[str, Any] | None, url: str) -> Any:
    """The Rich renderable of one refresh: ``document`` now, rates against ``previous``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    before: dict[str, dict[str, Any]] = {}
    elapsed = 0.0
    if previous is not None:
        before = {key: node for _, key, node in _walk(previous["tree"])}
        elapsed = float(document.get("time", 0)) - float(previous.get("time", 0))
    process: dict[str, Any] = document.get("process") or {}
    header = Text.assemble(
        ("actorio top", "bold"),
        f" {time.strftime('%H:%M:%S', time.localtime(float(document.get('time', 0))))}",
        f"  pid {process.get('pid', '?')} on {process.get('host', '?')}",
        f"  dead letters {document.get('dead_letters', 0)}  {url}",
    )
    table = Table(expand=False, box=None, header_style="bold")
    columns = (
        "ACTOR",
        "CLASS",
        "QUEUED",
        "MSG/S",
        "MEAN MS",
        "P50 MS",
        "P99 MS",
        "HANDLED",
        "FAILED",
        "RESTARTS",
        "NOW",
    )
    rows = list(_walk(document["tree"]))
    # The names are never cut (the other columns give way first).
    widths = {
        "ACTOR": max(len("  " * depth + str(node.get("identifier", "?"))) for depth, _, node in rows),
        "CLASS": max(len(str(node.get("actor_class", "?")).rsplit(".", 1)[-1]) for _, _, node in rows),
    }
    for column in columns:
        text = column in ("ACTOR", "CLASS", "NOW")
        table.add_column(
            column, justify="left" if text else "right", no_wrap=column != "NOW", min_width=widths.get(column)
        )
    for depth, key, node in rows:
        handled = node.get("handled")
        rate = mean = "-"
        old = before.get(key)
        if old is not None and elapsed > 0 and handled is not None and old.get("handled") is not None:
            count = handled - old["handled"]
            rate = f"{count / elapsed:.1f}"
            seconds = (node.get("handler_seconds") or 0.0) - (old.get("handler_seconds") or 0.0)
            mean = f"{seconds / count * 1000:.2f}" if count > 0 else "-"
        table.add_row(
            "  " * depth + str(node.get("identifier", "?")),
            str(node.get("actor_class", "?")).rsplit(".", 1)[-1],
            str(node.get("queued", "?")),
            rate,
            mean,
            _milliseconds(node.get("handler_p50")),
            _milliseconds(node.get("handler_p99")),
            "-" if handled is None else str(handled),
            "-" if node.get("failed") is None else str(node.get("failed")),
            str(node.get("restarts", 0)),
            str(node.get("handling") or ""),
        )
    return Group(header, table)


def _milliseconds(seconds: object) -> str:
    return f"{seconds * 1000:.2f}" if isinstance(seconds, (int, float)) else "-"


def run_top(urls: list[str], interval: float = 1.0, once: bool = False, out: TextIO | None = None) -> int:
    """Show the systems at ``urls`` (one endpoint a process) until interrupted (Ctrl-C),
    refreshing every ``interval`` seconds; with ``once``, print one view and return (1 if an
    endpoint could not be read). Returns the exit status."""
    try:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.text import Text
    except ImportError:
        raise SystemExit("python -m actorio top needs Rich: pip install 'actorio[top]'") from None
    console = Console(file=out) if out is not None else Console()
    previous: dict[str, dict[str, Any]] = {}

    def view() -> tuple[Any, bool]:
        parts: list[Any] = []
        failed = False
        for url in urls:
            try:
                document = fetch(url)
            except (OSError, ValueError) as error:
                parts.append(Text(f"cannot read {url}: {error}"))
                failed = True
                continue
            parts.append(render(document, previous.get(url), url))
            previous[url] = document
        return Group(*parts), failed

    if once:
        shown, failed = view()
        console.print(shown)
        return 1 if failed else 0
    try:
        with Live(Text(f"reading {' '.join(urls)} ..."), console=console, auto_refresh=False) as live:
            while True:
                live.update(view()[0], refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0
