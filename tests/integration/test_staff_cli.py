"""`fleetdesk users` and `fleetdesk tokens` from the shell: secrets never on the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import recreate_database


@pytest.fixture(scope="module")
def cli_env(database_url):
    url = database_url.set(database=f"{database_url.database}_cli")
    recreate_database(url)
    return {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}


def fleetdesk(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_users_add_reads_the_password_from_stdin_and_lists_the_account(cli_env):
    added = fleetdesk(cli_env, "users", "add", "--email", "Ops@Example.test", "--role", "admin", "--name",
                      "Olu Ops", stdin="Night-Shift-Keys-42\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added ops@example.test as admin"
    listed = fleetdesk(cli_env, "users", "list")
    assert "ops@example.test" in listed.stdout and "admin" in listed.stdout
    assert "Night-Shift-Keys-42" not in listed.stdout + added.stdout + added.stderr


def test_a_weak_password_from_stdin_is_one_line_and_nothing_is_added(cli_env):
    result = fleetdesk(cli_env, "users", "add", "--email", "weak@example.test", "--role", "desk_agent",
                       stdin="password\n")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "at least 12 characters" in result.stderr
    assert "weak@example.test" not in fleetdesk(cli_env, "users", "list").stdout


def test_role_changes_disable_enable_and_reset(cli_env):
    fleetdesk(cli_env, "users", "add", "--email", "desk@example.test", "--role", "desk_agent",
              stdin="Front-Counter-Keys-7\n")
    assert fleetdesk(cli_env, "users", "set-role", "desk@example.test", "fleet_manager").stdout.strip() \
        == "desk@example.test is now fleet_manager"
    assert "is now disabled" in fleetdesk(cli_env, "users", "disable", "desk@example.test").stdout
    assert "is now active" in fleetdesk(cli_env, "users", "enable", "desk@example.test").stdout
    reset = fleetdesk(cli_env, "users", "reset-password", "desk@example.test", stdin="Brand-New-Phrase-88\n")
    assert reset.returncode == 0 and "reset" in reset.stdout
    unknown = fleetdesk(cli_env, "users", "disable", "ghost@example.test")
    assert unknown.returncode == 1 and "no staff member" in unknown.stderr


def test_a_password_on_the_command_line_is_not_accepted(cli_env):
    result = fleetdesk(cli_env, "users", "add", "--email", "x@example.test", "--role", "admin", "--password", "x")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_tokens_create_prints_the_token_last_and_revoke_stops_it(cli_env):
    fleetdesk(cli_env, "users", "add", "--email", "api@example.test", "--role", "desk_agent",
              stdin="Partner-Site-Key-2026\n")
    created = fleetdesk(cli_env, "tokens", "create", "--email", "api@example.test", "--expires-days", "7")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("fdk_")
    listed = fleetdesk(cli_env, "tokens", "list").stdout
    assert token not in listed and token[:12] in listed and "active" in listed
    token_id = listed.split()[0]
    assert fleetdesk(cli_env, "tokens", "revoke", token_id).returncode == 0
    assert "revoked" in fleetdesk(cli_env, "tokens", "list").stdout
    again = fleetdesk(cli_env, "tokens", "revoke", token_id)
    assert again.returncode == 1 and "already revoked" in again.stderr
    bad = fleetdesk(cli_env, "tokens", "create", "--email", "api@example.test", "--expires-days", "0")
    assert bad.returncode == 1 and "1 to 730 days" in bad.stderr
