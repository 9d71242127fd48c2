"""`fleetdesk analytics refresh` from the shell, on a committed database of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from db.session import make_engine, session_scope
from services import analytics
from tests import factories as f
from tests.conftest import recreate_database


@pytest.fixture(scope="module")
def cli_db(database_url):
    url = database_url.set(database=f"{database_url.database}_analyticscli")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        vtype = f.vehicle_type(session)
        f.vehicle(session, vtype, f.location(session, code="ACL1"))
    yield url, engine
    engine.dispose()
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def fleetdesk(url, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_refresh_builds_the_summary_the_page_reads_and_says_what_it_did(cli_db):
    url, engine = cli_db
    with session_scope(engine) as session:
        assert analytics.refreshed_at(session) is None
    done = fleetdesk(url, "analytics", "refresh", "--full")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("analytics refreshed as of") and "every day" in done.stdout
    with session_scope(engine) as session:
        assert datetime.now(UTC) - analytics.refreshed_at(session) < timedelta(minutes=5)


def test_an_unknown_option_is_one_line_and_exit_2(cli_db):
    url, _ = cli_db
    done = fleetdesk(url, "analytics", "refresh", "--everything")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--everything" in done.stderr
