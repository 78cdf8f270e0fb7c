"""A strict test runtime: the event loop runs in debug mode, warnings are errors (pyproject),
and every test has a global timeout (pyproject)."""

from __future__ import annotations

import os

# Read by asyncio each time a loop is created: every test's loop runs in debug mode.
os.environ["PYTHONASYNCIODEBUG"] = "1"
