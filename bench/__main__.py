"""`python -m bench [NAME ...]`: run the named benchmarks (all of them when none is named)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("availability", "bookings", "api", "analytics", "rebalance", "prices")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
