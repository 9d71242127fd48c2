"""Test fixtures on a real PostgreSQL + PostGIS: a fresh database per test session, a rolled-back one per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from db import cluster, migrate
from db.config import test_database_target
from db.session import make_engine

TEST_ENCRYPTION_KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="


def pytest_configure(config) -> None:
    # One key for the whole run: the demo databases, the app under test and the tests all read the same licences.
    os.environ.setdefault("FLEETDESK_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)


def _admin_connect(url: URL) -> psycopg.Connection:
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres", autocommit=True
    )


def recreate_database(url: URL) -> None:
    """Drop and create the database named in url, then migrate it to head."""
    with _admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{url.database}"')
    migrate.upgrade(url)


@pytest.fixture(scope="session")
def database_url() -> URL:
    target = test_database_target()
    if target.embedded:
        cluster.start()
    if os.environ.get("CI") and not target.url.database.endswith("_test") and "test" not in target.url.database:
        raise RuntimeError(f"refusing to run tests against {target.masked}: not a test database")
    recreate_database(target.url)
    return test_database_target().url


@pytest.fixture(scope="session")
def engine(database_url: URL) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@contextmanager
def rolled_back_session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back: tests leave nothing behind."""
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with rolled_back_session(engine) as s:
        yield s


@pytest.fixture(scope="session")
def demo_url(database_url: URL) -> URL:
    """A committed small demo company in its own database, for page and browser tests."""
    from data.demo import DemoSpec, load_demo
    from db.session import session_scope
    from services import staff
    from services.actors import Actor

    url = database_url.set(database=f"{database_url.database}_ui")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        load_demo(session, DemoSpec(branches=6, vehicles=150, history_days=30, seed=3))
        staff.ensure_demo_staff(session, Actor.command_line())
    engine.dispose()
    return url
