"""`fleetdesk customers …`: find a customer, and the privacy requests (export, erase) an admin runs by hand."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TextIO

from app.commands.common import CommandError, operator, unit_of_work
from services import customers, privacy


def _find(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        found = customers.find_customers(session, operator(), args.query, limit=args.limit,
                                         include_erased=args.include_erased)
    if not found:
        print("no customer matches; search by part of a name, email or phone number, or a whole licence number")
        return
    for c in found:
        print(f"{c.id:>7}  {c.full_name[:30]:<30} {c.email[:36]:<36} {(c.phone or '-'):<18} "
              f"{c.licence_masked or 'no licence':<10} {c.status}")


def _export(args: argparse.Namespace) -> None:
    # the file is claimed first and written after the commit: no export leaves without its audit entry
    handle = _open_private(args.out) if args.out is not None else None
    try:
        with unit_of_work() as session:
            export = privacy.export_customer(session, operator(), args.id)
    except BaseException:
        if handle is not None:
            handle.close()
            args.out.unlink()
        raise
    document = json.dumps(export, indent=2, ensure_ascii=False) + "\n"
    if handle is None:
        print(document, end="")
        return
    with handle:
        handle.write(document)
    print(f"customer {args.id} exported to {args.out}")


def _erase(args: argparse.Namespace) -> None:
    if not args.yes:
        raise CommandError(f"this erases the personal data of customer {args.id} for good; add --yes to do it")
    with unit_of_work() as session:
        done = privacy.erase_customer(session, operator(), args.id, args.reason)
    print(f"customer {done.customer_id} erased; {done.bookings_kept} bookings and {done.payments_kept} payments "
          f"kept under the pseudonymous id {done.customer_id}; {done.audit_entries_redacted} audit entries and "
          f"{done.notifications_redacted} messages redacted")


def _open_private(path: Path) -> TextIO:
    """A new file readable by this user only (the export holds personal data); never over an existing file."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} already exists; choose another --out file") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    return os.fdopen(descriptor, "w", encoding="utf-8")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("customers", help="customers: find, export (JSON), erase")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    find = actions.add_parser("find", help="find customers by name, email, phone or licence number")
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=50)
    find.add_argument("--include-erased", action="store_true")
    find.set_defaults(func=_find)
    export = actions.add_parser("export", help="everything held about a customer, as JSON")
    export.add_argument("id", type=int)
    export.add_argument("--out", type=Path, help="write to this new file (mode 600) instead of standard output")
    export.set_defaults(func=_export)
    erase = actions.add_parser("erase", help="anonymise a customer's personal data (bookings and payments kept)")
    erase.add_argument("id", type=int)
    erase.add_argument("--reason", required=True, help="why, e.g. the date and channel of the request")
    erase.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")
    erase.set_defaults(func=_erase)
