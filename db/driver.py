"""Statements on a hot path, run on the session's own psycopg connection, in its transaction.

SQLAlchemy's statement and result machinery costs about 0.15 ms of CPU per statement with a wide row — as much as
the statement costs PostgreSQL. Creating a booking runs two such statements on every call; `DriverQuery` runs one
(written as for `text()`, with `:name` parameters) straight on psycopg, which prepares it on the server after a few
runs, and returns a named tuple. What SQLAlchemy does around a statement that the rest of the app relies on is kept:
`before_cursor_execute` listeners hear it, and a driver error comes out as SQLAlchemy's (OperationalError for a lost
connection, IntegrityError, …) with the dead connection invalidated, so the pool replaces it."""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

_DIALECT = psycopg_dialect.dialect()


class DriverQuery:
    """A `text()` statement compiled once for psycopg (its `%(name)s` placeholders, `%` escaped)."""

    def __init__(self, sql: str) -> None:
        self.sql = str(text(sql).compile(dialect=_DIALECT))

    def one_or_none(self, session: Session, params: dict[str, Any]) -> NamedTuple | None:
        """The first row (as a named tuple), or None."""
        connection = session.connection()
        driver = connection.connection.driver_connection
        try:
            with driver.cursor(row_factory=namedtuple_row) as cursor:
                # listeners of the engine hear it too (e.g. tests that cut the connection before a given statement)
                connection.dispatch.before_cursor_execute(connection, cursor, self.sql, params, None, False)
                return cursor.execute(self.sql, params).fetchone()
        except psycopg.Error as error:
            lost = driver.closed or driver.broken
            if lost:
                connection.invalidate(error)
            raise DBAPIError.instance(self.sql, params, error, psycopg.Error, connection_invalidated=lost,
                                      dialect=connection.dialect) from None
