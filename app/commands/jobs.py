"""`fleetdesk jobs run`: one pass of the scheduled jobs (the worker runs them on a schedule)."""

from __future__ import annotations

import argparse

from app.commands.common import unit_of_work
from services import bookings


def _run(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        expired = bookings.expire_holds(session)
        no_shows = bookings.mark_no_shows(session)
    print(f"released {expired:,} expired holds; marked {no_shows:,} no-shows")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("jobs", help="scheduled jobs")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    actions.add_parser("run", help="one pass: release expired holds, mark no-shows").set_defaults(func=_run)
