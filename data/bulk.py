"""Bulk loading through PostgreSQL's COPY, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

_CHUNK_ROWS = 100_000


def driver_connection(session: Session) -> psycopg.Connection:
    """The psycopg connection under the session, in the session's transaction."""
    return session.connection().connection.driver_connection


def empty_business_tables(session: Session) -> None:
    """TRUNCATE every table of the schema but its bookkeeping (migrations, app_meta, PostGIS's own), so tables
    added by later migrations (telematics, transfers, ...) never keep rows about vehicles that are gone."""
    tables = session.execute(text("""
        SELECT format('%I', c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname NOT IN ('alembic_version', 'app_meta')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY c.relname
    """)).scalars().all()
    session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


def copy_frame(connection: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    """COPY the frame's rows into the table's columns of the same names (empty fields are NULL)."""
    columns = ", ".join(frame.columns)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        for start in range(0, len(frame), _CHUNK_ROWS):
            copy.write(frame.iloc[start:start + _CHUNK_ROWS].to_csv(header=False, index=False))


def restart_identities(session: Session, tables: list[str]) -> None:
    """After rows with explicit ids: the next id handed out is one past the largest."""
    for table in tables:
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
        ))


@contextmanager
def checked_once(session: Session, table: str) -> Iterator[None]:
    """Load a big table without its foreign keys and plain indexes, then put them back.

    As PostgreSQL's "Populating a Database" advises: each foreign key is then checked once for all rows, and each
    index built in one pass, instead of both row by row; the rows are checked all the same. Primary keys, unique
    constraints and triggers stay in place. Everything happens in the caller's transaction, so a failure leaves
    the table as it was.
    """
    foreign_keys = session.execute(text("""
        SELECT format('%I', conname), pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname
    """), {"table": table}).all()
    indexes = session.execute(text("""
        SELECT format('%I.%I', n.nspname, i.relname), pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE x.indrelid = CAST(:table AS regclass)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
    """), {"table": table}).all()
    ddl = session.connection().exec_driver_sql  # definitions are SQL as PostgreSQL wrote it: no bind markers
    for name, _ in foreign_keys:
        ddl(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for name, _ in indexes:
        ddl(f"DROP INDEX {name}")
    yield
    for _, definition in indexes:
        ddl(definition)
    for name, definition in foreign_keys:
        ddl(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
