"""Every `fleetdesk` command but the optimisers (see app/cli.py). Every failure a person can fix ends with one line
on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.exc import OperationalError, ProgrammingError

from app.commands.base import Parser, first_line, unexpected
from app.commands.common import CommandError, operator, require_migrated, unit_of_work, unreachable, up_target
from db import cluster, migrate
from db.config import PROJECT_ROOT, database_target, fleetdesk_home
from db.errors import DatabaseSetupError
from db.session import make_engine
from services import staff
from services.crypto import check_configuration
from services.errors import FleetdeskError

COMMAND_MODULES: tuple[str, ...] = ("app.commands.users", "app.commands.tokens", "app.commands.customers", "app.commands.keys",
                                    "app.commands.telematics", "app.commands.vehicles", "app.commands.jobs",
                                    "app.commands.payments", "app.commands.api", "app.commands.optimise",
                                    "app.commands.worker", "app.commands.transfers",
                                    "app.commands.analytics")


def cmd_db(args: argparse.Namespace) -> None:
    target = database_target()
    if args.action == "start":
        if not target.embedded:
            print(f"DATABASE_URL is set: using {target.masked}; no embedded cluster is started")
            return
        print(f"database: {cluster.start()}")
    elif args.action == "stop":
        print(f"database: {cluster.stop() if target.embedded else 'DATABASE_URL is set; nothing to stop'}")
    elif args.action == "status":
        _print_status(target)
    elif args.action == "migrate":
        target = up_target()
        _migrate(target)
        print(f"database: migrated to {migrate.head_revision()}")
    elif args.action == "reset":
        if not target.embedded and not args.yes:
            raise CommandError(f"this would erase everything in {target.masked}; add --yes to do it")
        target = up_target()
        if target.embedded:
            cluster.drop_database(target.url.database)
            cluster.ensure_database(target.url.database)
        else:
            engine = make_engine(target.url)
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            engine.dispose()
        _migrate(target)
        print(f"database: {target.url.database} emptied and migrated to {migrate.head_revision()}")


def _print_status(target) -> None:
    engine = make_engine(target.url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        up = "up"
    except OperationalError:
        up = "down"
    finally:
        engine.dispose()
    print(f"status: {up}")
    print(f"url: {target.masked}")
    if up == "down":
        raise SystemExit(3)


def _migrate(target) -> None:
    try:
        migrate.upgrade(target.url)
    except OperationalError as exc:
        raise CommandError(unreachable(target)) from exc


def cmd_demo_data(args: argparse.Namespace) -> None:
    from data.demo import DemoSpec, load_demo

    spec = DemoSpec(branches=args.branches, vehicles=args.vehicles, history_days=args.history_days, seed=args.seed)
    spec.validate()
    with unit_of_work() as session:
        report = load_demo(session, spec, force=args.force)
        staff.ensure_demo_staff(session, operator())
    print(report)


def cmd_serve(args: argparse.Namespace) -> None:
    check_configuration()
    target = up_target()
    require_migrated(target)
    env = {**os.environ}
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app" / "streamlit_app.py"),
        "--server.port", str(args.port), "--server.address", args.host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    with unit_of_work() as session:
        logins = [login for login in staff.ensure_demo_staff(session, operator())
                  if staff.get_staff(session, login[0]).status == "active"] if _has_demo(session) else []
    api = None
    if args.api_port:
        api_log = open(fleetdesk_home() / "api.log", "ab")  # noqa: SIM115 - the child keeps writing to it
        api = subprocess.Popen([sys.executable, "-m", "app.cli", "api", "--host", args.host, "--port",
                                str(args.api_port)], env=env, cwd=PROJECT_ROOT, stdout=api_log, stderr=api_log)
    print(f"Fleetdesk is served on http://localhost:{args.port}")
    if api:
        print(f"  REST API     http://localhost:{args.api_port}  (docs: http://localhost:{args.api_port}/docs; "
              f"log: {fleetdesk_home() / 'api.log'})")
    if os.environ.get("STRIPE_API_BASE"):
        print(f"  payments     Stripe stand-in (localstripe) at {os.environ['STRIPE_API_BASE']}")
    for email, role, password in logins:
        print(f"  demo login  {role:<16} {email:<26} password: {password}")
    sys.stdout.flush()
    try:
        code = subprocess.call(command, env=env, cwd=PROJECT_ROOT)
    finally:
        if api:
            api.terminate()
            api.wait(timeout=10)
    raise SystemExit(code)


def _has_demo(session) -> bool:
    from db.models import AppMeta

    return session.get(AppMeta, "demo") is not None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fleetdesk", description="Fleetdesk operations console.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    db = sub.add_parser("db", help="the database: start, stop, status, migrate, reset")
    db.add_argument("action", choices=["start", "stop", "status", "migrate", "reset"])
    db.add_argument("--yes", action="store_true", help="confirm a reset of a database named by DATABASE_URL")
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("demo-data", help="load a deterministic demo rental company")
    demo.add_argument("--branches", type=int, default=40)
    demo.add_argument("--vehicles", type=int, default=2000)
    demo.add_argument("--history-days", type=int, default=365)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--force", action="store_true", help="replace demo data that is already loaded")
    demo.set_defaults(func=cmd_demo_data)

    serve = sub.add_parser("serve", help="serve the dashboard")
    serve.add_argument("--port", type=int, default=int(os.environ.get("FLEETDESK_UI_PORT", "8501")))
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--api-port", type=int, default=int(os.environ.get("FLEETDESK_API_PORT", "8000")),
                       help="also serve the REST API on this port (0: do not)")
    serve.set_defaults(func=cmd_serve)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("FLEETDESK_LOG_LEVEL", "WARNING"))
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], None] = args.func
        handler(args)
    except (CommandError, DatabaseSetupError, FleetdeskError, ValueError) as exc:
        print(f"fleetdesk: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CommandError | ValueError) else 1
    except OperationalError as exc:
        print(f"fleetdesk: error: the database cannot be reached ({first_line(exc)}); "
              "run `fleetdesk db status`", file=sys.stderr)
        return 1
    except ProgrammingError as exc:
        print(f"fleetdesk: error: the database refused the request ({first_line(exc)}); "
              "is it migrated? run `fleetdesk db migrate`", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fleetdesk: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last net
        return unexpected(exc)
    return 0
