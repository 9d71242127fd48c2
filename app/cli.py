"""The `fleetdesk` command. Every failure a person can fix ends with one line on stderr and a non-zero exit.

`fleetdesk optimise …` needs no database: it is answered from here with only the optimisers loaded (numpy and
OR-Tools), which saves the second or so that loading SQLAlchemy, the models, pandas and the payment SDK costs every
other command (`app/cli_full.py`). An optimiser run is timed whole, start-up included.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # an optimiser's --time-limit counts from here: start-up, reading and writing included

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from app.commands.base import CommandError, Parser, unexpected  # noqa: E402

OPTIMISE = "optimise"


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != [OPTIMISE]:
        from app.cli_full import run as run_full

        return run_full(argv)
    logging.basicConfig(level=os.environ.get("FLEETDESK_LOG_LEVEL", "WARNING"))
    try:
        from app.commands import optimise

        parser = Parser(prog="fleetdesk", description="Fleetdesk operations console.")
        optimise.register(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
        args = parser.parse_args(argv)
        args.started = STARTED
        args.func(args)
    except (CommandError, ValueError) as exc:
        print(f"fleetdesk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fleetdesk: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last net
        return unexpected(exc)
    return 0


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()
