"""One small program per peer library, each run by `benchmarks.peers` with its own venv's python.

Each program takes ``--scale``, measures tell throughput, the ask round trip and spawn + stop with
its library's own API, and prints one JSON line of figures. The library is imported with
`importlib.import_module`, so that it is ``Any`` to mypy and need not be installed where mypy runs.
"""
