# The part of pytest-xdist (untyped for mypy: no py.typed) that tests/distribution.py uses.
