"""`fleetdesk payments …`: reconcile with the gateway; start and stop the local Stripe stand-in (localstripe)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, date, datetime

from app import payments_server
from app.commands.common import CommandError, operator, unit_of_work
from services import payments
from services.gateway import LOCAL_WEBHOOK_SECRET


def _since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
    except ValueError:
        raise CommandError(f"--since must be a date like 2026-11-01, not {raw!r}") from None


def _reconcile(args: argparse.Namespace) -> None:
    since = _since(args.since)
    with unit_of_work() as session:
        report = payments.reconcile(session, since=since, fix=args.fix, actor=operator())
    for difference in report.differences:
        print(difference)
    unfixed = len(report.differences) - report.fixed
    print(f"checked {report.checked} card payments{f' since {since:%Y-%m-%d}' if since else ''}: "
          f"{len(report.differences)} difference(s), {report.fixed} fixed")
    if unfixed:
        if not args.fix:
            print("nothing was changed; run again with --fix to take the gateway's state for ours")
        raise SystemExit(3)


def _server(args: argparse.Namespace) -> None:
    server = payments_server.LocalStripe.for_project(args.port)
    if args.action == "start":
        started = payments_server.start(server)
        secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or LOCAL_WEBHOOK_SECRET
        payments_server.register_webhook(server.api_base, payments_server.webhook_url(), secret)
        print(f"localstripe: {'started' if started else 'already up'} on {server.api_base} "
              f"(state {server.state_file})")
        print(f"webhook: {payments_server.webhook_url()}")
        print(f"use it with: export STRIPE_API_BASE={server.api_base}")
    elif args.action == "stop":
        print(f"localstripe: {'stopped' if payments_server.stop(server) else 'was not running'}")
    else:
        state = payments_server.status(server)
        print(f"localstripe: {state} ({server.api_base})")
        if state == "down":
            raise SystemExit(3)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("payments", help="payments: reconcile with the gateway, the local Stripe stand-in")
    actions = parser.add_subparsers(dest="action_group", required=True, parser_class=type(parser))
    reconcile = actions.add_parser("reconcile", help="compare our payments with the gateway's; report differences")
    reconcile.add_argument("--since", help="only payments made on or after this date (YYYY-MM-DD)")
    reconcile.add_argument("--fix", action="store_true", help="take the gateway's state for ours where they differ")
    reconcile.set_defaults(func=_reconcile)
    server = actions.add_parser("server", help="the local Stripe stand-in (localstripe) for the demo and tests")
    server.add_argument("action", choices=["start", "stop", "status"])
    server.add_argument("--port", type=int, default=None, help="default STRIPE_LOCAL_PORT or 8420")
    server.set_defaults(func=_server)
