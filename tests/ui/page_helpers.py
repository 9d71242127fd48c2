"""What page tests share: the app pointed at a test database, and an AppTest with someone signed in."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st
from sqlalchemy.engine import URL
from streamlit.testing.v1 import AppTest

from db.models import UserRole
from services.actors import Actor

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


def point_app_at(monkeypatch, url: URL, **env: str) -> None:
    """The app reads this database (no basemap: no network here), with fresh caches."""
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.setenv("FLEETDESK_BASEMAP", "off")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_caches()


def clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def signed_in(role: str, page: str | None = None, *, state: dict | None = None,
              query: dict | None = None) -> AppTest:
    """The whole app, run once with a staff member of this role signed in, then switched to a page."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["actor"] = Actor(None, f"{role}@example.test", UserRole(role), f"Test {role}")
    at.session_state["last_seen"] = time.time()
    at.run()  # pages registered with a url_path are known only after a first run
    for name, value in (state or {}).items():
        at.session_state[name] = value
    for name, value in (query or {}).items():
        at.query_params[name] = value
    if page:
        at.switch_page(f"../pages/{page}")
        at.run()
    return at
