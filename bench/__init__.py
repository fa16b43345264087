"""Shoal's benchmark suite: `python3 dev.py bench` (see bench/README.md)."""
