"""What every subcommand needs: the database target, a unit of work, the acting operator, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.commands.base import CommandError  # noqa: F401 - every command imports it from here
from db import cluster, migrate
from db.config import DatabaseTarget, database_target
from db.session import make_engine, session_scope
from services.actors import Actor


def up_target() -> DatabaseTarget:
    """The configured database, started first when it is the embedded one."""
    target = database_target()
    if target.embedded:
        cluster.start()
    return target


def unreachable(target: DatabaseTarget) -> str:
    if target.embedded:
        return f"cannot reach the embedded database at {target.masked}; run `fleetdesk db start`"
    return f"cannot reach DATABASE_URL {target.masked}; check that the server is up and the URL is right"


def require_migrated(target: DatabaseTarget) -> None:
    try:
        current = migrate.current_revision(target.url)
    except OperationalError as exc:
        raise CommandError(unreachable(target)) from exc
    if current != migrate.head_revision():
        raise CommandError(
            f"the database is at migration {current or 'none'}, not {migrate.head_revision()}; "
            "run `fleetdesk db migrate`"
        )


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A migrated database's session, committed when the command succeeds."""
    target = up_target()
    require_migrated(target)
    engine = make_engine(target.url, pool_size=2, max_overflow=0)
    try:
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def operator() -> Actor:
    return Actor.command_line()


def read_secret(prompt: str) -> str:
    """A secret from a prompt, or — when stdin is not a terminal — from its first line. Never from argv."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        second = getpass.getpass("Again: ")
        if first != second:
            raise CommandError("the two entries differ; nothing was changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise CommandError("expected the secret on the first line of standard input")
    return line.rstrip("\r\n")
