"""The `fleetdesk` command: every failure a person can fix is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from db import cluster
from db.errors import DatabaseSetupError
from tests.conftest import _admin_connect


def fleetdesk(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


UNREACHABLE = "postgresql+psycopg://someone:hunter2@127.0.0.1:9/nowhere"


def test_an_unreachable_database_url_is_one_line(database_url):
    result = fleetdesk("db", "migrate", env={"DATABASE_URL": UNREACHABLE})
    assert_one_line_error(result, "cannot reach DATABASE_URL")
    assert "hunter2" not in result.stderr


def test_status_prints_up_or_down_and_the_masked_url(database_url):
    down = fleetdesk("db", "status", env={"DATABASE_URL": UNREACHABLE})
    assert down.returncode != 0
    assert down.stdout.splitlines() == ["status: down", "url: postgresql+psycopg://someone:***@127.0.0.1:9/nowhere"]
    up = fleetdesk("db", "status", env={"DATABASE_URL": database_url.render_as_string(hide_password=False)})
    assert up.returncode == 0
    assert up.stdout.splitlines()[0] == "status: up"
    assert database_url.password not in up.stdout


def test_demo_data_on_an_unmigrated_database_says_to_migrate(database_url):
    url = database_url.set(database=f"{database_url.database}_empty")
    with _admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{url.database}"')
    result = fleetdesk("demo-data", "--branches", "2", "--vehicles", "5",
                       env={"DATABASE_URL": url.render_as_string(hide_password=False)})
    assert_one_line_error(result, "not", "fleetdesk db migrate")


@pytest.mark.parametrize("args", [
    ["--branches", "0"], ["--branches", "100000"], ["--vehicles", "-5"], ["--history-days", "-1"],
])
def test_demo_data_of_an_impossible_size_is_refused(args, database_url):
    result = fleetdesk("demo-data", *args, env={"DATABASE_URL": database_url.render_as_string(hide_password=False)})
    assert_one_line_error(result)
    assert result.returncode == 2


def test_a_mistyped_command_is_one_line():
    assert_one_line_error(fleetdesk("db", "explode"), "invalid choice")


def test_a_taken_port_is_named(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = fleetdesk("db", "start", env={"FLEETDESK_HOME": str(tmp_path / "home"),
                                               "FLEETDESK_DB_PORT": str(port), "DATABASE_URL": ""})
    assert_one_line_error(result, f"port {port} is taken", "FLEETDESK_DB_PORT")


def test_missing_postgis_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(cluster, "postgis_installed", lambda major: False)
    monkeypatch.setattr(cluster, "_is_root", lambda: False)
    with pytest.raises(DatabaseSetupError) as caught:
        cluster.ensure_server_software()
    major = cluster.find_binaries().major
    assert str(caught.value) == f"PostGIS is missing; run: sudo apt-get install -y postgresql-{major}-postgis-3"


def test_missing_postgresql_names_the_packages_to_install(monkeypatch):
    monkeypatch.setattr(cluster, "find_binaries", lambda: None)
    monkeypatch.setattr(cluster, "_is_root", lambda: False)
    with pytest.raises(DatabaseSetupError, match="apt-get install -y postgresql"):
        cluster.ensure_server_software()
