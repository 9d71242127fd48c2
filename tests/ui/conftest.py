"""Page tests run the app against the committed demo test database."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL


@pytest.fixture
def app_env(demo_url: URL, monkeypatch) -> URL:
    """Point the app at the demo test database, with no basemap (there is no network here)."""
    monkeypatch.setenv("DATABASE_URL", demo_url.render_as_string(hide_password=False))
    monkeypatch.setenv("FLEETDESK_BASEMAP", "off")
    return demo_url
