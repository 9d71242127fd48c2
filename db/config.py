"""Where the database is: ``DATABASE_URL`` when set, otherwise the project's own embedded cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 54329
DEMO_DATABASE = "fleetdesk"
TEST_DATABASE = "fleetdesk_test"
CLUSTER_USER = "fleetdesk"


def fleetdesk_home() -> Path:
    """The git-ignored folder holding local state (cluster, keys, logs)."""
    return Path(os.environ.get("FLEETDESK_HOME", PROJECT_ROOT / ".fleetdesk")).resolve()


def embedded_port() -> int:
    raw = os.environ.get("FLEETDESK_DB_PORT", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"FLEETDESK_DB_PORT must be a port number, not {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"FLEETDESK_DB_PORT must be between 1 and 65535, not {port}")
    return port


def turnaround_minutes() -> int:
    """Minutes a car is blocked after a drop-off for cleaning and checks (FLEETDESK_TURNAROUND_MINUTES)."""
    raw = os.environ.get("FLEETDESK_TURNAROUND_MINUTES", "60")
    try:
        minutes = int(raw)
    except ValueError:
        raise ValueError(f"FLEETDESK_TURNAROUND_MINUTES must be whole minutes, not {raw!r}") from None
    if not 0 <= minutes <= 24 * 60:
        raise ValueError("FLEETDESK_TURNAROUND_MINUTES must be between 0 and 1440")
    return minutes


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL
    embedded: bool

    @property
    def masked(self) -> str:
        return self.url.render_as_string(hide_password=True)


def _embedded_url(database: str) -> URL:
    password_file = fleetdesk_home() / "db_password"
    password = password_file.read_text().strip() if password_file.exists() else None
    return URL.create(
        "postgresql+psycopg",
        username=CLUSTER_USER,
        password=password,
        host="127.0.0.1",
        port=embedded_port(),
        database=database,
    )


def _normalise(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"DATABASE_URL must point at PostgreSQL, not {parsed.drivername}")
    return parsed


def database_target() -> DatabaseTarget:
    """The database the app and commands use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return DatabaseTarget(_normalise(url), embedded=False)
    return DatabaseTarget(_embedded_url(DEMO_DATABASE), embedded=True)


def test_database_target() -> DatabaseTarget:
    """The tests' own database: never the demo one (TEST_DATABASE_URL, else DATABASE_URL's server + _test)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return DatabaseTarget(_normalise(explicit), embedded=False)
    url = os.environ.get("DATABASE_URL")
    if url:
        parsed = _normalise(url)
        return DatabaseTarget(parsed.set(database=f"{parsed.database}_test"), embedded=False)
    return DatabaseTarget(_embedded_url(TEST_DATABASE), embedded=True)
