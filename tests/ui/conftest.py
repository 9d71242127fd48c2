"""Page tests run the app against the committed demo test database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL


@pytest.fixture
def app_env(demo_url: URL, monkeypatch) -> URL:
    """Point the app at the demo test database, with no basemap (there is no network here)."""
    monkeypatch.setenv("DATABASE_URL", demo_url.render_as_string(hide_password=False))
    monkeypatch.setenv("FLEETDESK_BASEMAP", "off")
    return demo_url


@pytest.fixture
def app_as(app_env):
    """An AppTest of the whole app with a staff member of the given role already signed in."""
    import time

    from streamlit.testing.v1 import AppTest

    from db.models import UserRole
    from services.actors import Actor

    def make(role: str = "admin", page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"), default_timeout=60)
        at.session_state["actor"] = Actor(None, f"{role}@example.test", UserRole(role), f"Test {role}")
        at.session_state["last_seen"] = time.time()
        if page:
            at.run()  # pages registered with a url_path are known only after a first run
            at.switch_page(page)
        return at

    return make
