"""Shoal's fault experiments: longer than a test, against the real suite, each printing what
it measured (`python3 dev.py chaos`, or `python -m chaos --only NAME`). The bounded versions
of the same faults are tests under tests/."""
