"""`fleetdesk optimise …`: run an optimiser on an instance file and write its plan as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.commands.base import CommandError
from services.optimise import prices, rebalance


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


def _rebalance(args: argparse.Namespace) -> None:
    try:
        instance = rebalance.parse_instance(_read_json(args.instance))
    except ValueError as exc:
        raise CommandError(f"{args.instance}: {exc}") from exc
    plan = rebalance.plan_rebalancing(instance, time_limit_s=args.time_limit, processes=True)
    _write_json(rebalance.plan_to_dict(plan), args.out)
    if plan.status not in ("optimal", "feasible"):
        print(f"fleetdesk: {plan.status}: {plan.reason}", file=sys.stderr)
        raise SystemExit(1)


def _add_rebalance(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser("rebalance", help="plan overnight moves of cars between branches")
    parser.add_argument("instance", metavar="INSTANCE.json")
    parser.add_argument("--out", metavar="PLAN.json", help="write the plan here instead of stdout")
    parser.add_argument("--time-limit", type=_time_limit, default=30.0, metavar="S",
                        help="seconds the solver may take (default 30)")
    parser.set_defaults(func=_rebalance)


def _prices(args: argparse.Namespace) -> None:
    try:
        instance = prices.parse_instance(_read_json(args.instance))
    except ValueError as exc:
        raise CommandError(f"{args.instance}: {exc}") from exc
    plan = prices.optimise_prices(instance, time_limit_s=args.time_limit)
    _write_json(prices.plan_to_dict(plan), args.out)
    if plan.status not in ("optimal", "feasible"):
        print(f"fleetdesk: {plan.status}: {plan.reason}", file=sys.stderr)
        raise SystemExit(1)


def _add_prices(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser("prices", help="propose daily rates per branch, class and day from forecast demand")
    parser.add_argument("instance", metavar="INSTANCE.json")
    parser.add_argument("--out", metavar="PRICES.json", help="write the rates here instead of stdout")
    parser.add_argument("--time-limit", type=_time_limit, default=10.0, metavar="S",
                        help="seconds the optimiser may take (default 10)")
    parser.set_defaults(func=_prices)


# One entry per optimiser; a new one adds its `_add_…` function here.
_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_rebalance, _add_prices)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("optimise", help="optimisers: rebalancing the fleet between branches, daily rates")
    actions = parser.add_subparsers(dest="optimiser", required=True, parser_class=type(parser))
    for add in _SUBCOMMANDS:
        add(actions)
