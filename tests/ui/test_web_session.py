"""The web session behind a password sign-in, through AppTest (no browser: the cookie is only a script here)."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from db.session import make_engine, session_scope
from services import web_sessions
from services.staff import DEMO_STAFF, get_staff
from tests.db_helpers import scalar

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
DESK_EMAIL, _, _, DESK_PASSWORD = DEMO_STAFF[0]


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _revoked(url, token: str) -> bool:
    digest = hashlib.sha256(token.encode()).digest()
    return scalar(url, "SELECT revoked_at IS NOT NULL FROM web_sessions WHERE token_hash = :h", h=digest)


def _scripts(at: AppTest) -> str:
    return " ".join(element.body for element in at.get("html"))


def _signed_in_with_password() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input(DESK_EMAIL)
    at.text_input[1].input(DESK_PASSWORD)
    return at.button[0].click().run()


def _web_session(url, started: datetime) -> str:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return web_sessions.start(s, get_staff(s, DESK_EMAIL).id, now=started)
    finally:
        engine.dispose()


def test_a_password_sign_in_hands_the_browser_a_web_session_cookie(app_env):
    at = _signed_in_with_password()
    token = at.session_state["web_session"]
    assert at.title[0].value == "Fleet map"
    assert not _revoked(app_env, token)
    script = _scripts(at)
    assert f"fleetdesk_session={token}; Max-Age=43200; Path=/; SameSite=Strict" in script
    assert "'https:' ? '; Secure'" in script


def test_sign_out_ends_the_web_session_and_clears_the_cookie(app_env):
    at = _signed_in_with_password()
    token = at.session_state["web_session"]
    at.sidebar.button(key="sign-out").click().run()
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert _revoked(app_env, token)
    assert "fleetdesk_session=; Max-Age=0" in _scripts(at)


def test_a_tab_whose_web_session_ended_elsewhere_is_signed_out_at_its_next_check(app_env):
    at = _signed_in_with_password()
    token = at.session_state["web_session"]
    engine = make_engine(app_env)
    try:
        with session_scope(engine) as s:
            web_sessions.end(s, token)  # signed out in another tab
    finally:
        engine.dispose()
    at.session_state["web_session_touched"] = time.time() - 61
    at.run()
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert "ended in another tab" in at.info[0].value


def test_idle_here_but_active_in_another_tab_stays_signed_in(app_env, monkeypatch):
    monkeypatch.setenv("FLEETDESK_IDLE_MINUTES", "30")
    at = _signed_in_with_password()
    at.session_state["last_seen"] = time.time() - 31 * 60  # the server saw the other tab just now
    at.run()
    assert at.title[0].value == "Fleet map"


def test_idle_everywhere_signs_out_and_ends_the_web_session(app_env, monkeypatch):
    monkeypatch.setenv("FLEETDESK_IDLE_MINUTES", "30")
    token = _web_session(app_env, started=datetime.now(UTC) - timedelta(minutes=31))
    at = _signed_in_with_password()
    at.session_state["web_session"] = token
    at.session_state["last_seen"] = time.time() - 31 * 60
    at.run()
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert "without activity" in at.info[0].value
    assert _revoked(app_env, token)
