"""`fleetdesk vehicles import FILE.csv [--good-rows-only]`: add vehicles in bulk, with a report line per bad row."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands.common import CommandError, operator, unit_of_work
from services import vehicle_import
from services.errors import InvalidInput


def _import(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    if path.stat().st_size > vehicle_import.MAX_BYTES:
        raise CommandError(f"{path} is {path.stat().st_size / 1024 / 1024:,.1f} MB; import at most "
                           f"{vehicle_import.MAX_BYTES // 1024 // 1024} MB at a time — split it into smaller files")
    try:
        with unit_of_work() as session:
            report = vehicle_import.import_vehicles(session, operator(), path.read_bytes(),
                                                    good_rows_only=args.good_rows_only, source=path.name)
    except InvalidInput as problem:  # the file as a whole cannot be read: bad input, one line
        raise CommandError(f"{path.name}: {str(problem).rstrip('.')}") from None
    for problem in report.problems:
        print(f"  {problem}")
    print(report.summary())
    if report.problems and report.imported == 0:
        hint = "" if args.good_rows_only else " (or add --good-rows-only)"
        raise CommandError(f"{report.bad_rows:,} of {report.rows:,} rows of {path.name} are bad and nothing was "
                           f"imported; fix the lines listed above{hint}")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vehicles", help="vehicles: bulk import from CSV")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    load = actions.add_parser(
        "import", help="add vehicles from a CSV file (all or nothing unless --good-rows-only)",
        description="Columns: vin, license_plate, make, model, year, vehicle_type, branch, daily_rate and optionally "
                    "odometer_km, fuel_level, image_urls (separated by |). Every bad row is listed by line; by "
                    "default nothing is imported when any row is bad.")
    load.add_argument("file")
    load.add_argument("--good-rows-only", action="store_true",
                      help="import the good rows even when some are bad (the bad ones are listed)")
    load.set_defaults(func=_import)
