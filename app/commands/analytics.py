"""`fleetdesk analytics refresh [--full]`: rebuild the figures the Analytics page reads (the worker does it hourly)."""

from __future__ import annotations

import argparse

from app.commands.common import unit_of_work
from services import analytics


def _refresh(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        result = analytics.refresh(session, full=args.full)
    print(result.describe())


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("analytics", help="operations analytics: rebuild the summary the Analytics page reads")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    refresh = actions.add_parser("refresh", help="recompute the last days (or everything with --full)")
    refresh.add_argument("--full", action="store_true", help="recompute every day, not only the recent ones")
    refresh.set_defaults(func=_refresh)
