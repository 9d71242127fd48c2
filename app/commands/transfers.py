"""`fleetdesk transfers list|depart|arrive|cancel`: the drivers' coordinator's work from the command line."""

from __future__ import annotations

import argparse
import re

from app.commands.common import CommandError, operator, unit_of_work
from services import transfers
from services.errors import FleetdeskError


def _transfer_id(value: str) -> int:
    match = re.fullmatch(r"[Tt]?(\d{1,18})", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a transfer (give its number, e.g. T12 or 12)")
    return int(match.group(1))


def _list(args: argparse.Namespace) -> None:
    statuses = tuple(s for s in args.status.split(",") if s) if args.status else ()
    try:
        with unit_of_work() as session:
            table = transfers.list_transfers(session, statuses=statuses)
    except FleetdeskError as problem:
        raise CommandError(str(problem)) from None
    if table.empty:
        print("no transfers")
        return
    for row in table.itertuples():
        print(f"{row.ref}\t{row.status}\t{row.plate}\t{row.vehicle_type}\t{row.from_code} -> {row.to_code}\t"
              f"{row.depart_at:%Y-%m-%d %H:%M} -> {row.arrive_at:%Y-%m-%d %H:%M} UTC")


def _change(args: argparse.Namespace) -> None:
    try:
        with unit_of_work() as session:
            if args.action == "depart":
                view = transfers.depart(session, operator(), args.transfer)
            elif args.action == "arrive":
                view = transfers.arrive(session, operator(), args.transfer)
            else:
                view = transfers.cancel(session, operator(), args.transfer, args.reason)
    except FleetdeskError as problem:  # refused: nothing was changed
        raise CommandError(str(problem)) from None
    print(f"{view.ref} {view.status.value.replace('_', ' ')}: {view.plate} {view.from_code} -> {view.to_code}")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("transfers", help="transfers of cars between branches: list, depart, arrive, cancel")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    listing = actions.add_parser("list", help="open transfers, soonest departure first (tab-separated)")
    listing.add_argument("--status", default="planned,in_transit",
                         help="comma-separated statuses (planned, in_transit, arrived, cancelled); '' for all")
    listing.set_defaults(func=_list)
    for action, text in (("depart", "the car leaves its branch now (it is InTransit)"),
                         ("arrive", "the car has arrived at its new branch (Available there)")):
        change = actions.add_parser(action, help=text)
        change.add_argument("transfer", type=_transfer_id)
        change.set_defaults(func=_change)
    cancel = actions.add_parser("cancel", help="call off a planned transfer, saying why")
    cancel.add_argument("transfer", type=_transfer_id)
    cancel.add_argument("--reason", required=True)
    cancel.set_defaults(func=_change)
