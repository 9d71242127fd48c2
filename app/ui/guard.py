"""Stop a page with a clear message when the database is unusable, and come back by itself when it is."""

from __future__ import annotations

import streamlit as st

from app.resources import get_engine
from db import health
from db.config import database_target


def require_database() -> None:
    """Render an error and stop the script unless the database is reachable and migrated."""
    hint = ("start it with `fleetdesk db start`" if database_target().embedded
            else "check that the server is up and that DATABASE_URL is right")
    status = health.check(get_engine(), hint=hint)
    if status.ok:
        return
    st.error(f"**Fleetdesk cannot reach its data.** {status.message}", icon=":material/database:")
    st.caption("This page retries by itself every 5 seconds.")
    _retry_when_back()
    st.stop()


@st.fragment(run_every=5)
def _retry_when_back() -> None:
    if health.check(get_engine()).ok:
        st.rerun(scope="app")
