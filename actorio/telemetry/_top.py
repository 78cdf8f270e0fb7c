"""``python -m actorio top URL``: a live view of a running system, read from its snapshot
endpoint (`serve_snapshots`), refreshed in the terminal with Rich.

Each row is an actor of the tree, indented under its parent: its class, the messages queued,
messages handled a second and the mean time in its handler over the last interval, the median
and 99th percentile of its last 256 handler times, handled and failed counts, restarts, and the
message it is handling now. The header says which process it
is and how many dead letters it has recorded.

A ``nats://`` URL lists instead every node on that NATS server that answers as a service
(``Node.serve_as_service``): one row per published actor, with its requests, errors, mean
handling time and queue.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, TextIO, cast

from ..lowlevel import printable

__all__ = ["MAX_RESPONSE", "MAX_ROWS", "fetch", "render", "render_services", "run_top"]

MAX_RESPONSE = 16 * 1024 * 1024
"""The most bytes read of a snapshot."""


MAX_ROWS = 2000
"""The most actors one view shows (a terminal shows fewer; the rest are counted)."""

_CELL_CHARS = 200
"""The longest text a cell or the header shows of one value from a snapshot."""

_SERVICE_TEXT = 40
"""The widest a text column (node, name, class) of the NATS view is drawn."""


_fetching: dict[str, threading.Thread] = {}
"""The fetch under way for each URL (one at most: a URL that never answers holds one thread)."""


def fetch(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The snapshot document at ``url``, read within ``timeout`` seconds in all. Raises
    ``OSError`` (unreachable, too slow) or ``ValueError`` (not a snapshot).

    The read runs on a thread of its own, waited for ``timeout`` seconds: a server that sends its
    headers a byte at a time would keep a socket's own timeout from ever expiring. While a read of
    ``url`` that outlived its time still runs, the next one raises ``TimeoutError`` at once."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    running = _fetching.get(url)
    if running is not None and running.is_alive():
        raise TimeoutError(f"the snapshot took more than {timeout} s to arrive (still waiting)")
    outcome: list[dict[str, Any] | BaseException] = []

    def read() -> None:
        try:
            outcome.append(_read(url, timeout))
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    thread = _fetching[url] = threading.Thread(target=read, name="actorio-top-fetch", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"the snapshot took more than {timeout} s to arrive")
    del _fetching[url]
    found = outcome[0]
    if isinstance(found, BaseException):
        raise found
    return found


def _read(url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:  # an address the user gave
        while size <= MAX_RESPONSE:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the snapshot took more than {timeout} s to arrive")
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > MAX_RESPONSE:
        raise ValueError(f"the snapshot is larger than {MAX_RESPONSE} bytes")
    try:
        document: Any = json.loads(b"".join(chunks))
    except RecursionError:
        raise ValueError("the snapshot is nested too deeply") from None
    if not isinstance(document, dict) or not isinstance(cast("dict[str, Any]", document).get("tree"), dict):
        raise ValueError("not a snapshot document (no tree)")
    return cast("dict[str, Any]", document)


def _plain(value: object) -> str:
    """A value of a snapshot as the screen shows it: its text, cut to `_CELL_CHARS`, with every
    character that is not printable (escape sequences, newlines, bidi overrides) shown escaped.
    A snapshot is data from another process: nothing in it drives the terminal."""
    text = str(value)
    return printable(f"{text[:_CELL_CHARS]}..." if len(text) > _CELL_CHARS else text)


def _cells(*values: object) -> list[Any]:
    """Table cells of plain text: Rich reads a string cell as markup, a `Text` as it is."""
    from rich.text import Text

    return [Text(_plain(value)) for value in values]


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
        f"  pid {_plain(process.get('pid', '?'))} on {_plain(process.get('host', '?'))}",
        f"  dead letters {_plain(document.get('dead_letters', 0))}  {_plain(url)}",
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
    hidden = len(rows) - MAX_ROWS
    rows = rows[:MAX_ROWS]
    # The names are never cut (the other columns give way first).
    widths = {
        "ACTOR": max(len("  " * depth + _plain(node.get("identifier", "?"))) for depth, _, node in rows),
        "CLASS": max(len(_plain(node.get("actor_class", "?")).rsplit(".", 1)[-1]) for _, _, node in rows),
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
            if count >= 0:  # less: the counts are an incarnation's, and it restarted meanwhile
                rate = f"{count / elapsed:.1f}"
                seconds = (node.get("handler_seconds") or 0.0) - (old.get("handler_seconds") or 0.0)
                mean = f"{seconds / count * 1000:.2f}" if count > 0 else "-"
        table.add_row(
            *_cells(
                "  " * depth + _plain(node.get("identifier", "?")),
                _plain(node.get("actor_class", "?")).rsplit(".", 1)[-1],
                node.get("queued", "?"),
                rate,
                mean,
                _milliseconds(node.get("handler_p50")),
                _milliseconds(node.get("handler_p99")),
                "-" if handled is None else handled,
                "-" if node.get("failed") is None else node.get("failed"),
                node.get("restarts", 0),
                node.get("handling") or "",
            )
        )
    if hidden > 0:
        return Group(header, table, Text(f"... and {hidden} more actors"))
    return Group(header, table)


async def _services(url: str, wait: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every actorio node on the NATS server at ``url`` that answers as a service (``$SRV.INFO``
    and ``$SRV.STATS``, gathered for ``wait`` seconds): (info, stats) by node."""
    import asyncio

    import nats

    connect = nats.connect  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    client = await connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for verb in ("INFO", "STATS"):
            inbox = client.new_inbox()
            replies: list[bytes] = []

            async def take(msg: Any, replies: list[bytes] = replies) -> None:
                # At most 1000 nodes a refresh, and MAX_RESPONSE bytes of their replies.
                if len(replies) < 1000 and sum(map(len, replies)) + len(msg.data) <= MAX_RESPONSE:
                    replies.append(msg.data)

            subscribe = client.subscribe  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            subscription = await subscribe(inbox, cb=take)
            await client.publish(f"$SRV.{verb}.actorio", b"", reply=inbox)
            await asyncio.sleep(wait)
            await subscription.unsubscribe()
            for data in replies:
                try:
                    reply = json.loads(data)
                    found.setdefault(str(reply["id"]), {})[verb] = reply
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue  # not a node's reply: skipped
        return [
            (node["INFO"], node["STATS"]) for node in found.values() if "INFO" in node and "STATS" in node
        ]
    finally:
        await client.close()


def render_services(nodes: list[tuple[dict[str, Any], dict[str, Any]]], url: str) -> Any:
    """The Rich renderable of the nodes on a NATS server: one row per published actor, at most
    `MAX_ROWS` in all, shared among the nodes (any service on the server may answer for actorio,
    with any number of endpoints: a node with thousands takes no row from a smaller one; the
    rows left out are counted, not drawn)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    header = Text.assemble(
        ("actorio top", "bold"), f" {time.strftime('%H:%M:%S')}  {len(nodes)} nodes on {_plain(url)}"
    )
    table = Table(expand=False, box=None, header_style="bold")
    for column in ("NODE", "NAME", "CLASS", "QUEUED", "REQUESTS", "ERRORS", "AVG MS"):
        text = column in ("NODE", "NAME", "CLASS")
        # Text columns at most _SERVICE_TEXT wide, cut with an ellipsis: a responder with a long
        # name must not push the other nodes' figures off the screen.
        table.add_column(
            column,
            justify="left" if text else "right",
            no_wrap=True,
            max_width=_SERVICE_TEXT if text else None,
            overflow="ellipsis",
        )
    ordered = sorted(nodes, key=lambda pair: str(pair[0].get("id")))
    actors = [_actor_count(stats) for _, stats in ordered]
    hidden_actors, hidden_nodes = 0, 0
    shares = _shares([max(1, count) for count in actors])  # (a node without actors: a row "-")
    for (info, stats), count, rows_left in zip(ordered, actors, shares, strict=True):
        if rows_left == 0:
            hidden_actors, hidden_nodes = hidden_actors + count, hidden_nodes + 1
            continue
        try:
            rows = _service_rows(info, stats, rows_left)
            drawn = len(rows) if count else 0  # (a node without actors: its row "-")
        except (AttributeError, TypeError, ValueError, ArithmeticError) as error:  # fields of wrong types
            rows = [
                _cells(info.get("id"), "?", f"cannot read its stats ({type(error).__name__})", "", "", "", "")
            ]
            drawn = 0
        for row in rows:
            table.add_row(*row)
        hidden_actors += count - drawn
    if hidden_actors or hidden_nodes:
        nodes_text = f" ({hidden_nodes} nodes not shown)" if hidden_nodes else ""
        return Group(header, table, Text(f"... and {hidden_actors} more actors{nodes_text}"))
    return Group(header, table)


def _actor_count(stats: object) -> int:
    """How many actors a node's ``$SRV.STATS`` reply lists (0 if it lists none, or cannot be read)."""
    fields = cast("dict[str, object]", stats) if isinstance(stats, dict) else {}
    endpoints = fields.get("endpoints")
    return len(cast("list[object]", endpoints)) if isinstance(endpoints, list) else 0


def _shares(wanted: list[int]) -> list[int]:
    """The rows each node gets of `MAX_ROWS`: all it has if it can, the smallest first, and what
    those leave shared evenly among the rest (at least one row each while rows remain)."""
    given = [0] * len(wanted)
    left = MAX_ROWS
    order = sorted(range(len(wanted)), key=wanted.__getitem__)
    for done, index in enumerate(order):
        share = max(1, left // (len(order) - done)) if left > 0 else 0
        given[index] = min(wanted[index], share)
        left -= given[index]
    return given


def _service_rows(info: dict[str, Any], stats: dict[str, Any], limit: int) -> list[list[Any]]:
    """The rows of one node's published actors, at most ``limit`` (raises on a field of the
    wrong type)."""
    described: list[dict[str, Any]] = info.get("endpoints") or []
    classes: dict[str, str] = {}
    for endpoint in described[: 4 * MAX_ROWS]:
        metadata: dict[str, Any] = endpoint.get("metadata") or {}
        classes[str(endpoint.get("name"))] = str(metadata.get("actorio.actor.class", "?"))
    endpoints: list[dict[str, Any]] = stats.get("endpoints") or []
    if not endpoints:
        return [_cells(info.get("id"), "-", "", "", "", "", "")]
    rows: list[list[Any]] = []
    for endpoint in endpoints[: max(0, limit)]:
        data: dict[str, Any] = endpoint.get("data") or {}
        rows.append(
            _cells(
                info.get("id"),
                endpoint.get("name"),
                classes.get(str(endpoint.get("name")), "?").rsplit(".", 1)[-1],
                data.get("queued", "-"),
                endpoint.get("num_requests", "-"),
                endpoint.get("num_errors", "-"),
                _milliseconds((endpoint.get("average_processing_time") or 0) / 1e9),
            )
        )
    return rows


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
        raise SystemExit(
            "python -m actorio top needs Rich: pip install rich "
            "(or, in actorio's repository, pip install '.[top]')"
        ) from None
    console = Console(file=out) if out is not None else Console()
    previous: dict[str, dict[str, Any]] = {}  # the rates' base: the last document of another time
    latest: dict[str, dict[str, Any]] = {}

    def view() -> tuple[Any, bool]:
        parts: list[Any] = []
        failed = False
        for url in urls:
            if url.startswith(("nats://", "tls://")):
                import asyncio

                try:
                    parts.append(render_services(asyncio.run(_services(url, 0.3)), url))
                except Exception as error:  # unreachable, refused, malformed: said on the screen
                    parts.append(Text(_plain(f"cannot read {url}: {error}")))
                    failed = True
                continue
            try:
                document = fetch(url)
                last = latest.get(url)
                if last is not None and last.get("time") != document.get("time"):
                    previous[url] = last  # (the endpoint may answer the same document again)
                parts.append(render(document, previous.get(url), url))
            except Exception as error:  # unreachable, too slow, not a snapshot, fields of wrong types
                parts.append(Text(_plain(f"cannot read {url}: {error}")))
                previous.pop(url, None)
                latest.pop(url, None)
                failed = True
                continue
            latest[url] = document
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
