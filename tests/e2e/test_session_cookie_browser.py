"""A password sign-in survives a reload and a second tab, and a sign-out ends it: real Streamlit, Chromium, database."""

from __future__ import annotations

import hashlib
import time

import pytest

from services.staff import DEMO_STAFF
from tests.db_helpers import scalar
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e
DESK_PASSWORD = next(p for e, _, _, p in DEMO_STAFF if e == "desk@fleetdesk.demo")
COOKIE = "fleetdesk_session"


def _session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def _revoked(demo_url, token: str) -> bool:
    digest = hashlib.sha256(token.encode()).digest()
    return scalar(demo_url, "SELECT revoked_at IS NOT NULL FROM web_sessions WHERE token_hash = :h", h=digest)


def test_a_reload_and_a_second_tab_stay_signed_in_until_sign_out(live_app, page, demo_url):
    sign_in(page, live_app, "desk@fleetdesk.demo", DESK_PASSWORD)
    page.get_by_role("heading", name="Fleet map").wait_for(timeout=60_000)
    page.locator("[data-testid='stSidebarNav'] a", has_text="Walk-in desk").click()
    page.get_by_role("heading", name="Walk-in desk").wait_for(timeout=60_000)
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)
    cookie = _session_cookie(page.context)
    assert cookie["path"] == "/" and cookie["sameSite"] == "Strict" and not cookie["secure"]  # http here
    assert 11 * 3600 < cookie["expires"] - time.time() <= 12 * 3600
    assert not _revoked(demo_url, cookie["value"])

    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Walk-in desk").wait_for(timeout=60_000)
    assert page.url.endswith("/walk-in")
    assert page.get_by_role("heading", name="Sign in to Fleetdesk").count() == 0

    second = page.context.new_page()
    second.goto(live_app, wait_until="domcontentloaded")
    second.get_by_role("heading", name="Fleet map").wait_for(timeout=60_000)
    assert "Dana Desk" in second.locator("[data-testid='stSidebar']").inner_text()
    second.close()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=60_000)
    page.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=30_000)
    assert _revoked(demo_url, cookie["value"])

    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=60_000)
    page.context.add_cookies([{**cookie, "expires": time.time() + 3600}])  # a copy kept from before: spent
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=60_000)
    page.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=30_000)  # and forgotten
    assert page.locator("[data-testid='stException']").count() == 0
