"""`fleetdesk keys …`: the keys that encrypt licence numbers (FLEETDESK_ENCRYPTION_KEYS)."""

from __future__ import annotations

import argparse

from app.commands.common import operator, unit_of_work
from services import crypto, customers


def _generate(args: argparse.Namespace) -> None:
    print(crypto.generate_key())


def _rotate(args: argparse.Namespace) -> None:
    count = crypto.check_configuration()
    with unit_of_work() as session:
        rotated = customers.rotate_licence_keys(session, operator())
    print(f"re-encrypted {rotated} licence numbers under the first of {count} keys; once this is deployed "
          "everywhere, the other keys can be dropped from FLEETDESK_ENCRYPTION_KEYS")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="licence-number encryption keys: generate, rotate")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    actions.add_parser("generate", help="print a new key (put it first in FLEETDESK_ENCRYPTION_KEYS)") \
        .set_defaults(func=_generate)
    actions.add_parser("rotate", help="re-encrypt every licence number under the first key") \
        .set_defaults(func=_rotate)
