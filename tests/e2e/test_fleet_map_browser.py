"""The fleet map as a person sees it: a real Streamlit server, a real Chromium, the real database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.session import make_engine
from services.staff import DEMO_STAFF
from tests.e2e.conftest import SHOTS, settled, sign_in

pytestmark = pytest.mark.e2e
FLEET_PASSWORD = next(p for e, _, _, p in DEMO_STAFF if e == "fleet@fleetdesk.demo")


def _count(url, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_fleet_map_renders_the_map_and_the_status_counts(live_app, page, demo_url):
    sign_in(page, live_app, "fleet@fleetdesk.demo", FLEET_PASSWORD)
    page.get_by_role("heading", name="Fleet map").wait_for(timeout=60_000)
    counts = page.locator(".st-key-status-counts [data-testid='stMetric']")
    counts.first.wait_for(timeout=30_000)
    # the tiles render one by one: wait for the last before reading them (a loaded machine showed only some)
    counts.locator("[data-testid='stMetricLabel']", has_text="Vehicles shown").wait_for(timeout=30_000)
    shown = {
        counts.nth(i).locator("[data-testid='stMetricLabel']").inner_text().strip():
        counts.nth(i).locator("[data-testid='stMetricValue']").inner_text().strip()
        for i in range(counts.count())
    }
    available = _count(demo_url, "SELECT count(*) FROM vehicles WHERE status = 'available'")
    total = _count(demo_url, "SELECT count(*) FROM vehicles WHERE status <> 'retired'")
    assert shown["Available"] == f"{available:,}"
    assert shown["Vehicles shown"] == f"{total:,}"

    settled(page)
    deck = page.locator("[data-testid='stDeckGlJsonChart'] canvas").first
    deck.wait_for(state="visible", timeout=30_000)
    box = deck.bounding_box()
    assert box and box["width"] > 400 and box["height"] > 300
    page.wait_for_timeout(1500)  # let deck.gl draw its first frame
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = deck.screenshot(path=str(SHOTS / "fleet_map_canvas.png"))
    page.screenshot(path=str(SHOTS / "fleet_map.png"), full_page=True)
    assert _coloured_pixels(shot) > 50, "the map canvas is blank: no vehicle or branch was drawn"
    assert page.locator("[data-testid='stException']").count() == 0


def _coloured_pixels(png: bytes) -> int:
    """Pixels of the status colours (green available, blue rented) in the canvas screenshot."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    hits = 0
    for target in ((46, 160, 67), (31, 119, 180)):
        hits += int((np.abs(pixels - np.array(target)).max(axis=2) < 40).sum())
    return hits


@pytest.mark.parametrize("email, expected", [
    ("desk@fleetdesk.demo", {"Fleet map", "Branches"}),
    ("admin@fleetdesk.demo", {"Fleet map", "Branches", "Staff and API tokens", "Audit log"}),
])
def test_the_sidebar_lists_only_the_roles_pages_and_a_direct_address_is_refused(live_app, page, email, expected):
    password = next(p for e, _, _, p in DEMO_STAFF if e == email)
    sign_in(page, live_app, email, password)
    page.get_by_role("heading", name="Fleet map").wait_for(timeout=60_000)
    links = page.locator("[data-testid='stSidebarNav'] a")
    titles = {links.nth(i).inner_text().strip().splitlines()[-1] for i in range(links.count())}  # after the icon
    assert expected <= titles
    if email.startswith("desk"):
        assert "Audit log" not in titles and "Staff and API tokens" not in titles
        page.context.clear_cookies()  # a browser never signed in (a reload would resume the session)
        sign_in(page, f"{live_app}/audit-log", email, password)  # the address typed in, then signed in
        page.get_by_text("ask an admin if you need access").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stDataFrame']").count() == 0
