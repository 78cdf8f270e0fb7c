"""Runs the code blocks of one documentation page, as a reader would: ``python run_page.py
BLOCKS.json DIRECTORY``.

The page's ``python`` blocks run in order in one namespace (``__name__`` is ``"__main__"``) in
DIRECTORY, which is also on ``sys.path``; top-level ``await`` works, every awaiting block running
on one event loop. A ``text`` block right after a ``python`` block is that block's exact output.
A ``python`` block whose first line is ``# file: NAME`` is written to DIRECTORY/NAME instead.
A failure prints where (the page's line) and exits with status 1.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def main(blocks_file: str, directory: str) -> int:
    blocks: list[dict[str, Any]] = json.loads(Path(blocks_file).read_text())
    os.chdir(directory)
    sys.path.insert(0, directory)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loop: asyncio.AbstractEventLoop | None = None
    output: str | None = None
    try:
        for block in blocks:
            where = f"{block['page']}:{block['line']}"
            code: str = block["code"]
            if block["language"] == "text":
                if output is None:
                    print(f"{where}: a text block that follows no python block", file=sys.stderr)
                    return 1
                if output != code:
                    print(f"{where}: the block above printed\n{output!r}\nnot\n{code!r}", file=sys.stderr)
                    return 1
                output = None
                continue
            first = code.partition("\n")[0]
            if first.startswith("# file: "):
                Path(first.removeprefix("# file: ").strip()).write_text(code)
                output = None
                continue
            # Line numbers in tracebacks are the page's.
            compiled = compile(
                "\n" * (block["line"] - 1) + code, block["page"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            captured = io.StringIO()
            try:
                with contextlib.redirect_stdout(captured):
                    if compiled.co_flags & inspect.CO_COROUTINE:
                        if loop is None:
                            loop = asyncio.new_event_loop()
                        loop.run_until_complete(eval(compiled, namespace))
                    else:
                        exec(compiled, namespace)
            except BaseException:
                sys.stdout.write(captured.getvalue())
                print(f"{where}: the block raised", file=sys.stderr)
                traceback.print_exc()
                return 1
            output = captured.getvalue()
            sys.stdout.write(output)
        return 0
    finally:
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
