"""Small helpers for tests that read a committed test database directly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL

from db.session import make_engine


def scalar(url: URL, sql: str, **params: Any) -> Any:
    """The first column of the first row of one statement, run in its own committed transaction."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()
