"""`fleetdesk optimise …`: run an optimiser on an instance file and write its plan as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.commands.base import CommandError
from services.optimise import prices, rebalance

MIN_SOLVE_SECONDS = 0.5  # however little of the time limit is left, the optimiser gets this


def _read_json(path_text: str) -> Any:
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8 text") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def _write_json(document: dict[str, Any], out: str | None) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from exc


def _time_limit(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return seconds


def _run(args: argparse.Namespace, parse: Callable[[Any], Any], solve: Callable[[Any, float], Any],
         to_dict: Callable[[Any], dict[str, Any]]) -> None:
    """Read the instance (exit 2 naming the problem), solve, write the answer; exit 1 when there is no plan.

    `--time-limit` bounds the whole command: the optimiser gets what is left after start-up and reading, less twice
    the reading time for writing the answer (writing takes about that long)."""
    reading = time.monotonic()
    try:
        instance = parse(_read_json(args.instance))
    except ValueError as exc:
        raise CommandError(f"{args.instance}: {exc}") from exc
    read = time.monotonic()
    spent = read - getattr(args, "started", reading)
    plan = solve(instance, max(MIN_SOLVE_SECONDS, args.time_limit - spent - 2 * (read - reading) - 0.05))
    _write_json(to_dict(plan), args.out)
    if plan.status not in ("optimal", "feasible"):
        print(f"fleetdesk: {plan.status}: {plan.reason}", file=sys.stderr)
        raise SystemExit(1)


def _rebalance(args: argparse.Namespace) -> None:
    _run(args, rebalance.parse_instance,
         lambda instance, seconds: rebalance.plan_rebalancing(instance, time_limit_s=seconds, processes=True),
         rebalance.plan_to_dict)


def _prices(args: argparse.Namespace) -> None:
    _run(args, prices.parse_instance,
         lambda instance, seconds: prices.optimise_prices(instance, time_limit_s=seconds), prices.plan_to_dict)


def _adder(name: str, help_text: str, out: str, out_help: str, default_limit: float,
           handler: Callable[[argparse.Namespace], None]) -> Callable[[argparse._SubParsersAction], None]:
    def add(actions: argparse._SubParsersAction) -> None:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("instance", metavar="INSTANCE.json")
        parser.add_argument("--out", metavar=out, help=out_help)
        parser.add_argument("--time-limit", type=_time_limit, default=default_limit, metavar="S",
                            help=f"seconds the whole command may take, reading and writing included (default "
                                 f"{default_limit:g})")
        parser.set_defaults(func=handler)
    return add


_add_rebalance = _adder("rebalance", "plan overnight moves of cars between branches", "PLAN.json",
                        "write the plan here instead of stdout", 30.0, _rebalance)
_add_prices = _adder("prices", "propose daily rates per branch, class and day from forecast demand", "PRICES.json",
                     "write the rates here instead of stdout", 10.0, _prices)


# One entry per optimiser; a new one adds its `_add_…` function here.
_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_rebalance, _add_prices)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("optimise", help="optimisers: rebalancing the fleet between branches, daily rates")
    actions = parser.add_subparsers(dest="optimiser", required=True, parser_class=type(parser))
    for add in _SUBCOMMANDS:
        add(actions)
