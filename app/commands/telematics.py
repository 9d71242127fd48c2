"""`fleetdesk telematics …`: ingest readings from a file, or drive the demo fleet so the map moves."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.commands.common import CommandError, unit_of_work
from services import telematics


def _ingest(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    readings, unreadable = telematics.read_file(path)
    with unit_of_work() as session:
        report = telematics.ingest(session, readings)
    report.rejected = sorted(unreadable + report.rejected)
    print(report.summary())
    for line, reason in report.rejected[: args.show]:
        print(f"  line {line}: {reason}")
    if len(report.rejected) > args.show:
        print(f"  … and {len(report.rejected) - args.show:,} more")
    if report.rejected:
        sys.exit(3)


def _simulate(args: argparse.Namespace) -> None:
    if args.interval <= 0 or args.steps < 0:
        raise CommandError("--interval must be positive and --steps zero (forever) or more")
    step = 0
    while args.steps == 0 or step < args.steps:
        with unit_of_work() as session:
            report = telematics.simulate_step(session, minutes=args.interval / 60 * args.speedup)
        step += 1
        print(f"tick {step}: {report.summary()}", flush=True)
        if args.steps == 0 or step < args.steps:
            time.sleep(args.interval)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("telematics", help="vehicle telematics")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    ingest = actions.add_parser("ingest", help="ingest readings from a CSV or JSON-lines file")
    ingest.add_argument("file")
    ingest.add_argument("--show", type=int, default=50, help="how many rejected lines to list")
    ingest.set_defaults(func=_ingest)
    simulate = actions.add_parser("simulate", help="drive the demo fleet so the map moves")
    simulate.add_argument("--steps", type=int, default=1, help="ticks to run; 0 runs until interrupted")
    simulate.add_argument("--interval", type=float, default=10.0, help="seconds between ticks")
    simulate.add_argument("--speedup", type=float, default=6.0, help="simulated minutes per real minute")
    simulate.set_defaults(func=_simulate)
