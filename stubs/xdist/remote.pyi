# The part of pytest-xdist's xdist.remote that tests/distribution.py uses.

from typing import Any

class Producer:
    def __getattr__(self, name: str) -> Any: ...
