"""`fleetdesk transfers` from the shell, on a committed database of its own: list, depart, arrive, cancel, and a
one-line refusal naming the state (exit code 2) when a transition is not allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from db.models import Transfer, TransferStatus
from db.session import make_engine, session_scope
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar


@pytest.fixture(scope="module")
def cli_db(database_url):
    url = database_url.set(database=f"{database_url.database}_transfercli")
    recreate_database(url)
    engine = make_engine(url)
    depart = datetime.now(UTC) + timedelta(hours=2)
    with session_scope(engine) as session:
        vtype = f.vehicle_type(session)
        origin, destination = f.location(session, code="TCL1"), f.location(session, 51.15, -0.18, code="TCL2")
        for plate in ("TC21 AAA", "TC21 BBB"):
            car = f.vehicle(session, vtype, origin, license_plate=plate)
            session.add(Transfer(vehicle_id=car.id, from_location_id=origin.id, to_location_id=destination.id,
                                 depart_at=depart, arrive_at=depart + timedelta(hours=1),
                                 status=TransferStatus.PLANNED, distance_km=Decimal("40.0")))
    engine.dispose()
    yield url
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cli_env(cli_db):
    return {**os.environ, "DATABASE_URL": cli_db.render_as_string(hide_password=False)}


def fleetdesk(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _id(url, plate: str) -> int:
    return scalar(url, "SELECT t.id FROM transfers t JOIN vehicles v ON v.id = t.vehicle_id "
                       "WHERE v.license_plate = :plate", plate=plate)


def test_list_depart_and_arrive(cli_db, cli_env):
    listed = fleetdesk(cli_env, "transfers", "list")
    assert listed.returncode == 0, listed.stderr
    assert "TC21 AAA" in listed.stdout and "TCL1 -> TCL2" in listed.stdout
    ref = f"T{_id(cli_db, 'TC21 AAA')}"
    departed = fleetdesk(cli_env, "transfers", "depart", ref)
    assert departed.returncode == 0, departed.stderr
    assert departed.stdout.strip() == f"{ref} in transit: TC21 AAA TCL1 -> TCL2"
    assert scalar(cli_db, "SELECT status::text FROM vehicles WHERE license_plate = 'TC21 AAA'") == "in_transit"
    arrived = fleetdesk(cli_env, "transfers", "arrive", ref)
    assert arrived.returncode == 0, arrived.stderr
    assert scalar(cli_db, "SELECT l.code FROM vehicles v JOIN locations l ON l.id = v.current_location_id "
                          "WHERE v.license_plate = 'TC21 AAA'") == "TCL2"


def test_a_refused_transition_is_one_line_naming_the_state(cli_db, cli_env):
    ref = f"T{_id(cli_db, 'TC21 BBB')}"
    refused = fleetdesk(cli_env, "transfers", "arrive", ref)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"fleetdesk: error: Transfer {ref} is planned, so it cannot arrive: it has "
                                      "not left yet; record its departure first.")
    cancelled = fleetdesk(cli_env, "transfers", "cancel", ref, "--reason", "not needed")
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout


def test_bad_input_exits_2_with_one_line(cli_env):
    bad = fleetdesk(cli_env, "transfers", "depart", "X12")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "is not a transfer" in bad.stderr
    unknown = fleetdesk(cli_env, "transfers", "list", "--status", "lost")
    assert unknown.returncode == 2 and "Unknown transfer status lost" in unknown.stderr
    missing = fleetdesk(cli_env, "transfers", "arrive", "T999999")
    assert missing.returncode == 2 and "There is no transfer T999999" in missing.stderr
