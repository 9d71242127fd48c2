"""Sign-in, sign-out, idle timeout, and the page × role matrix, through Streamlit's AppTest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.navigation import PAGES
from db.models import UserRole
from services.staff import DEMO_STAFF

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
ROLES = ["desk_agent", "fleet_manager", "pricing_analyst", "admin"]


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _sign_in(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input[0].input(email)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def test_signed_out_visitors_see_only_the_sign_in_form(app_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert [t.label for t in at.text_input] == ["Email", "Password"]
    assert not at.metric and not at.dataframe


def test_each_demo_role_signs_in_and_sees_its_home(app_env):
    for email, role, _, password in DEMO_STAFF:
        at = _sign_in(AppTest.from_file(APP, default_timeout=60).run(), email, password)
        assert not at.exception, role
        assert at.session_state["actor"].role == role
        assert at.title[0].value == "Fleet map"
        assert role_label(role) in at.sidebar.markdown[0].value


def role_label(role: UserRole) -> str:
    return {"desk_agent": "Desk agent", "fleet_manager": "Fleet manager", "pricing_analyst": "Pricing analyst",
            "admin": "Admin"}[role.value]


def test_a_wrong_password_shows_the_generic_message_and_keeps_the_form(app_env):
    at = _sign_in(AppTest.from_file(APP, default_timeout=60).run(), "desk@fleetdesk.demo", "not-my-password")
    assert "Wrong email or password" in at.error[0].value
    assert "actor" not in at.session_state
    assert at.title[0].value == "Sign in to Fleetdesk"


def test_sign_out_returns_to_the_sign_in_page(app_as):
    at = app_as("desk_agent").run()
    at.sidebar.button(key="sign-out").click().run()
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert "actor" not in at.session_state


def test_an_idle_session_is_signed_out(app_as, monkeypatch):
    monkeypatch.setenv("FLEETDESK_IDLE_MINUTES", "30")
    at = app_as("fleet_manager")
    at.session_state["last_seen"] = time.time() - 31 * 60
    at.run()
    assert at.title[0].value == "Sign in to Fleetdesk"
    assert "30 minutes without activity" in at.info[0].value


@pytest.mark.parametrize("role", ROLES)
def test_page_role_matrix(app_as, role):
    """Every page × every role: the page when the role is served, a refusal (not the page) otherwise."""
    for spec in PAGES:
        at = app_as(role, f"../pages/{spec.file}").run()
        assert not at.exception, (role, spec.file, at.exception)
        served = role == "admin" or UserRole(role) in spec.roles
        refusals = [e.value for e in at.error if "ask an admin if you need access" in e.value]
        if served:
            assert not refusals, (role, spec.file)
            assert at.title[0].value == spec.title
        else:
            assert refusals, (role, spec.file)
            assert not at.dataframe and not at.metric, f"{spec.file} leaked content to {role}"
