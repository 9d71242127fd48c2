"""What the API shares between requests: one pooled engine for the configured database."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from db.config import database_target
from db.session import make_engine


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def engine() -> Engine:
    """The engine for the database configured now (DATABASE_URL, else the embedded cluster)."""
    return _engine_for(database_target().url.render_as_string(hide_password=False))
