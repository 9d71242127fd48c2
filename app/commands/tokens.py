"""`fleetdesk tokens …`: API tokens for the REST API."""

from __future__ import annotations

import argparse

from app.commands.common import operator, unit_of_work
from services import tokens


def _create(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        token, plain = tokens.create_token(session, operator(), args.email, expires_days=args.expires_days)
        print(f"token {token.id} for {args.email}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC; "
              "shown once, store it now:")
    print(plain)  # the last line, only after the commit succeeded


def _list(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        frame = tokens.list_tokens(session)
    if frame.empty:
        print("no API tokens; create one with `fleetdesk tokens create --email E`")
    for row in frame.itertuples():
        print(f"{row.id:>5}  {row.prefix}…  {row.owner:<32} {row.role:<16} {row.state:<8} "
              f"expires {row.expires_at:%Y-%m-%d}")


def _revoke(args: argparse.Namespace) -> None:
    with unit_of_work() as session:
        token = tokens.revoke_token(session, operator(), args.id)
        print(f"token {token.id} ({token.prefix}…) revoked")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tokens", help="API tokens")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    create = actions.add_parser("create", help="issue a token to a staff member (printed once, last line)")
    create.add_argument("--email", required=True)
    create.add_argument("--expires-days", type=int, default=90)
    create.set_defaults(func=_create)
    actions.add_parser("list", help="list tokens").set_defaults(func=_list)
    revoke = actions.add_parser("revoke", help="revoke a token")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=_revoke)
