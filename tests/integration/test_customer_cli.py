"""`fleetdesk customers` and `fleetdesk keys` from the shell, against a committed database of their own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from db.models import UserRole
from db.session import make_engine, session_scope
from services import customers
from services.actors import Actor
from tests.conftest import recreate_database
from tests.db_helpers import scalar

KEY = Fernet.generate_key().decode()
LICENCE = "CLITE812034CL9AB"


@pytest.fixture(scope="module")
def cli_db(database_url, tmp_path_factory):
    """A migrated database with three committed customers, and the environment that points the CLI at it."""
    url = database_url.set(database=f"{database_url.database}_custcli")
    recreate_database(url)
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False),
           "FLEETDESK_ENCRYPTION_KEYS": KEY, "FLEETDESK_HOME": str(tmp_path_factory.mktemp("home"))}
    env.pop("FLEETDESK_ENV", None)
    engine = make_engine(url)
    ids = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
        with session_scope(engine) as session:
            desk = Actor(None, "cli-test", UserRole.DESK_AGENT)
            expiry = datetime.now(UTC).date() + timedelta(days=700)
            for name, licence in (("Cleo Lite", LICENCE), ("Erin Gone", "ERING801010ER9AA"),
                                  ("Ola Export", "OLAEX702020OL9BB")):
                first, last = name.split()
                created = customers.create_customer(
                    session, desk, email=f"{first.lower()}@example.test", first_name=first, last_name=last,
                    date_of_birth=date(1990, 1, 1), phone="+44 20 7946 0100", licence_number=licence,
                    licence_country="GB", licence_expiry=expiry)
                ids[first.lower()] = created.id
    yield env, url, ids
    engine.dispose()


def fleetdesk(env, *args: str, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          env={**env, **overrides}, timeout=120)


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]




def test_find_prints_masked_licences_and_finds_by_the_whole_number(cli_db):
    env, _, ids = cli_db
    by_name = fleetdesk(env, "customers", "find", "cleo")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.split()[0] == str(ids["cleo"]) and "•••• L9AB" in by_name.stdout
    assert LICENCE not in by_name.stdout
    by_licence = fleetdesk(env, "customers", "find", "clite-812034 cl9ab")
    assert [line.split()[0] for line in by_licence.stdout.splitlines()] == [str(ids["cleo"])]


@pytest.mark.parametrize("query", ["'; DROP TABLE users; --", "%", "x" * 50_000])
def test_find_treats_hostile_input_as_text(cli_db, query):
    env, url, _ = cli_db
    result = fleetdesk(env, "customers", "find", query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no customer matches")
    assert scalar(url, "SELECT count(*) FROM users") >= 3


def test_export_to_standard_output_is_json_with_the_persons_own_licence(cli_db):
    env, url, ids = cli_db
    result = fleetdesk(env, "customers", "export", str(ids["ola"]))
    assert result.returncode == 0, result.stderr
    export = json.loads(result.stdout)
    assert export["customer"]["email"] == "ola@example.test"
    assert export["customer"]["licence"]["number"] == "OLAEX702020OL9BB"
    label = scalar(url, "SELECT actor_label FROM audit_log WHERE action = 'customer.exported' AND entity_id = :id",
                   id=str(ids["ola"]))
    assert label.startswith("cli:")


def test_export_to_a_file_is_private_and_never_overwrites(cli_db, tmp_path):
    env, _, ids = cli_db
    out = tmp_path / "ola.json"
    result = fleetdesk(env, "customers", "export", str(ids["ola"]), "--out", str(out))
    assert result.returncode == 0 and result.stdout.strip() == f"customer {ids['ola']} exported to {out}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["customer"]["id"] == ids["ola"]
    one_line_error(fleetdesk(env, "customers", "export", str(ids["ola"]), "--out", str(out)), "already exists")


def test_exporting_someone_who_does_not_exist_is_one_line_and_leaves_no_file(cli_db, tmp_path):
    env, _, _ = cli_db
    out = tmp_path / "nobody.json"
    one_line_error(fleetdesk(env, "customers", "export", "987654", "--out", str(out)), "There is no customer 987654")
    assert not out.exists()
    one_line_error(fleetdesk(env, "customers", "export", "abc"), "invalid int value")


def test_erase_needs_yes_then_erases_once(cli_db):
    env, url, ids = cli_db
    erin = str(ids["erin"])
    refused = fleetdesk(env, "customers", "erase", erin, "--reason", "asked by email")
    assert refused.returncode == 2
    one_line_error(refused, "add --yes")
    assert scalar(url, "SELECT status FROM users WHERE id = :id", id=ids["erin"]) == "active"
    one_line_error(fleetdesk(env, "customers", "erase", erin, "--yes"), "--reason")
    done = fleetdesk(env, "customers", "erase", erin, "--reason", "asked by email", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"customer {erin} erased; 0 bookings and 0 payments kept")
    assert scalar(url, "SELECT email FROM users WHERE id = :id", id=ids["erin"]) == f"erased-{erin}@invalid"
    again = fleetdesk(env, "customers", "erase", erin, "--reason", "asked by email", "--yes")
    assert again.returncode == 1
    one_line_error(again, "already erased")


def test_keys_generate_prints_a_usable_key(cli_db):
    result = fleetdesk(cli_db[0], "keys", "generate")
    assert result.returncode == 0
    Fernet(result.stdout.strip().encode())


def test_keys_rotate_moves_every_licence_to_the_new_key(cli_db):
    env, url, ids = cli_db
    new_key = Fernet.generate_key().decode()
    rotated = fleetdesk(env, "keys", "rotate", FLEETDESK_ENCRYPTION_KEYS=f"{new_key},{KEY}")
    assert rotated.returncode == 0, rotated.stderr
    count = scalar(url, "SELECT count(*) FROM users WHERE licence_number_encrypted IS NOT NULL")
    assert rotated.stdout.startswith(f"re-encrypted {count} licence numbers under the first of 2 keys")
    found = fleetdesk(env, "customers", "find", LICENCE, FLEETDESK_ENCRYPTION_KEYS=new_key)
    assert found.stdout.split()[0] == str(ids["cleo"])
    one_line_error(fleetdesk(env, "customers", "find", "cleo"), "Cannot decrypt", "fleetdesk keys rotate")
    back = fleetdesk(env, "keys", "rotate", FLEETDESK_ENCRYPTION_KEYS=f"{KEY},{new_key}")  # for the other tests
    assert back.returncode == 0, back.stderr


def test_production_without_keys_refuses_with_the_fix(cli_db):
    env, _, _ = cli_db
    line = one_line_error(fleetdesk(env, "keys", "rotate", FLEETDESK_ENV="production", FLEETDESK_ENCRYPTION_KEYS=""))
    assert line == ("fleetdesk: error: FLEETDESK_ENCRYPTION_KEYS is not set; production mode refuses to start without "
                    "keys — generate one with `fleetdesk keys generate`.")
    one_line_error(fleetdesk(env, "customers", "find", "cleo", FLEETDESK_ENV="production",
                             FLEETDESK_ENCRYPTION_KEYS=""), "FLEETDESK_ENCRYPTION_KEYS is not set")
    one_line_error(fleetdesk(env, "keys", "rotate", FLEETDESK_ENCRYPTION_KEYS="not-a-key"),
                   "Encryption key 1 is not a valid key")
