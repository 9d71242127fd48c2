"""Is the database usable? One answer with what to do when it is not."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from db.migrate import head_revision


@dataclass(frozen=True)
class Health:
    ok: bool
    message: str


def check(engine: Engine, *, hint: str = "start it with `fleetdesk db start`") -> Health:
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError:
        return Health(False, f"The database at {engine.url.render_as_string(hide_password=True)} "
                             f"cannot be reached; {hint}.")
    except ProgrammingError:
        return Health(False, "The database is not migrated; run `fleetdesk db migrate`.")
    if revision != head_revision():
        return Health(False, f"The database is at migration {revision}, not {head_revision()}; "
                             "run `fleetdesk db migrate`.")
    return Health(True, "ok")
