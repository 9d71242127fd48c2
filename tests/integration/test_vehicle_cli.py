"""`fleetdesk vehicles import` from the shell, on a committed database of its own: a report line per bad row,
one-line errors, and an exit code that tells a script whether anything was imported."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import text

from db.session import make_engine, session_scope
from services.vin import check_digit
from tests import factories
from tests.conftest import recreate_database

HEADER = "vin,license_plate,make,model,year,vehicle_type,branch,daily_rate,odometer_km,fuel_level,image_urls"


def good_vin(n: int) -> str:
    body = factories.vin(30_000_000 + n)
    return body[:8] + check_digit(body) + body[9:]


@pytest.fixture(scope="module")
def cli_db(database_url):
    url = database_url.set(database=f"{database_url.database}_vehcli")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        factories.vehicle_type(session, code="economy")
        factories.location(session, code="CLI1")
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


def plates(url) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT license_plate FROM vehicles")).scalars())
    finally:
        engine.dispose()


def write(tmp_path, name: str, *rows: str, header: str = HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def row(n: int, plate: str, *, branch: str = "CLI1", year: int = 2024) -> str:
    return f"{good_vin(n)},{plate},Toyota,Yaris,{year},economy,{branch},35.00,100,90,"


def test_a_good_file_is_imported_and_said_so(cli_env, cli_db, tmp_path):
    path = write(tmp_path, "good.csv", row(1, "CL01 AAA"), row(2, "cl02aaa"))
    result = fleetdesk(cli_env, "vehicles", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported all 2 vehicles"
    assert {"CL01 AAA", "CL02 AAA"} <= plates(cli_db)


def test_bad_rows_are_listed_by_line_and_nothing_is_imported(cli_env, cli_db, tmp_path):
    path = write(tmp_path, "mixed.csv", row(10, "CL10 AAA"), row(11, "CL11 AAA", branch="NOPE"),
                 row(12, "CL12 AAA", year=1970), row(13, "CL10 AAA"))
    result = fleetdesk(cli_env, "vehicles", "import", str(path))
    assert result.returncode == 2
    out = result.stdout.splitlines()
    assert out[0].startswith("  line 3: branch: There is no branch 'NOPE'")
    assert out[1].startswith("  line 4: year: The year 1970 is outside 1990–")
    assert out[2] == "  line 5: license_plate: The number plate CL10 AAA is also on line 2; list each vehicle once."
    assert out[3].startswith("imported nothing: 3 of 4 rows are bad")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("fleetdesk: error: 3 of 4 rows of mixed.csv are bad and nothing was imported; "
                                    "fix the lines listed above (or add --good-rows-only)")
    assert "CL10 AAA" not in plates(cli_db)


def test_good_rows_only_imports_the_good_ones_and_lists_the_rest(cli_env, cli_db, tmp_path):
    path = write(tmp_path, "mixed.csv", row(20, "CL20 AAA"), row(21, "CL21 AAA", branch="NOPE"))
    result = fleetdesk(cli_env, "vehicles", "import", str(path), "--good-rows-only")
    assert result.returncode == 0, result.stderr
    assert "  line 3: branch: There is no branch 'NOPE'" in result.stdout
    assert "imported 1 of 2 vehicles; the 1 bad rows were left out" in result.stdout
    assert "CL20 AAA" in plates(cli_db) and "CL21 AAA" not in plates(cli_db)


def test_a_second_import_of_the_same_file_reports_every_row_as_already_there(cli_env, tmp_path):
    path = write(tmp_path, "again.csv", row(30, "CL30 AAA"))
    assert fleetdesk(cli_env, "vehicles", "import", str(path)).returncode == 0
    result = fleetdesk(cli_env, "vehicles", "import", str(path))
    assert result.returncode == 2
    assert "line 2: vin: The VIN" in result.stdout and "already belongs to vehicle CL30 AAA" in result.stdout
    assert "line 2: license_plate: The number plate CL30 AAA already belongs to vehicle CL30 AAA" in result.stdout


@pytest.mark.parametrize(("content", "message"), [
    (f"vin,license_plate,make\n{good_vin(40)},CL40 AAA,Kia\n",
     "fleetdesk: error: bad.csv: The header row lacks the columns model, year, vehicle_type, branch, daily_rate"),
    ("", "fleetdesk: error: bad.csv: The file is empty"),
])
def test_a_file_that_cannot_be_read_is_one_line(cli_env, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = fleetdesk(cli_env, "vehicles", "import", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_missing_file_and_a_missing_argument_are_one_line(cli_env, tmp_path):
    missing = fleetdesk(cli_env, "vehicles", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr == f"fleetdesk: error: no such file: {tmp_path / 'nope.csv'}\n"
    bare = fleetdesk(cli_env, "vehicles", "import")
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1 and "the following arguments are required: file" \
        in bare.stderr


def test_the_help_documents_the_columns(cli_env):
    result = fleetdesk(cli_env, "vehicles", "import", "--help")
    assert result.returncode == 0
    text_ = " ".join(result.stdout.split())
    assert "vin, license_plate, make, model, year, vehicle_type, branch, daily_rate" in text_
    assert "--good-rows-only" in text_
