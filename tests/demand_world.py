"""A committed demo company with a year of history, for the demand model and price planning tests.

The default demo spec (40 branches, 2,000 cars, 365 days, seed 7) as of a fixed day, so that the fitted figures
are the same on every run; its own database beside the test database, created once per test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from db.session import make_engine, session_scope
from tests.conftest import recreate_database

TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="session")
def demand_url(database_url: URL) -> URL:
    from data.demo import DemoSpec, load_demo
    from services import staff
    from services.actors import Actor

    url = database_url.set(database=f"{database_url.database}_model")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        load_demo(session, DemoSpec(), now=NOW)
        staff.ensure_demo_staff(session, Actor.command_line())
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def demand_engine(demand_url: URL) -> Iterator[Engine]:
    engine = make_engine(demand_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def year_fit(demand_engine: Engine):
    """The demand model fitted once on the year of history (it reads every booking)."""
    from sqlalchemy.orm import Session

    from services import demand

    with Session(demand_engine) as session:
        return demand.fit_demand(session, today=TODAY)
