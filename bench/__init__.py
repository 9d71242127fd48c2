"""Benchmarks, each comparing against a baseline in the same run: `make bench` (or `python -m bench NAME`)."""
