"""`fleetdesk users …`: staff accounts. Passwords come from a prompt or stdin's first line, never argv."""

from __future__ import annotations

import argparse

from app.commands.common import operator, read_secret, unit_of_work
from services import staff


def _add(args: argparse.Namespace) -> None:
    password = read_secret(f"Password for {args.email}: ")
    with unit_of_work() as session:
        user = staff.add_staff(session, operator(), email=args.email, role=args.role, name=args.name or "",
                               password=password)
        print(f"added {user.email} as {user.role.value}")


def _list(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        frame = staff.list_staff(session)
    if frame.empty:
        print("no staff members yet; add one with `fleetdesk users add --email E --role R`")
        return
    for row in frame.itertuples():
        state = "locked" if row.locked else row.status
        print(f"{row.email:<36} {row.role:<16} {state:<9} {row.name}")


def _set_status(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        action = staff.disable_staff if args.action == "disable" else staff.enable_staff
        user = action(session, operator(), args.email)
        print(f"{user.email} is now {user.status}")


def _set_role(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        user = staff.set_role(session, operator(), args.email, args.role)
        print(f"{user.email} is now {user.role.value}")


def _reset_password(args: argparse.Namespace) -> None:
    password = read_secret(f"New password for {args.email}: ")
    with unit_of_work() as session:
        user = staff.reset_password(session, operator(), args.email, password)
        print(f"password of {user.email} reset; the account is unlocked")


def register(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="staff accounts")
    actions = users.add_subparsers(dest="action", required=True, parser_class=type(users))
    add = actions.add_parser("add", help="add a staff member (password from a prompt or stdin)")
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=["desk_agent", "fleet_manager", "pricing_analyst", "admin"])
    add.add_argument("--name")
    add.set_defaults(func=_add)
    actions.add_parser("list", help="list staff members").set_defaults(func=_list)
    for name in ("disable", "enable"):
        status = actions.add_parser(name, help=f"{name} a staff member")
        status.add_argument("email")
        status.set_defaults(func=_set_status)
    role = actions.add_parser("set-role", help="change a staff member's role")
    role.add_argument("email")
    role.add_argument("role", choices=["desk_agent", "fleet_manager", "pricing_analyst", "admin"])
    role.set_defaults(func=_set_role)
    reset = actions.add_parser("reset-password", help="set a new password (from a prompt or stdin)")
    reset.add_argument("email")
    reset.set_defaults(func=_reset_password)
