"""Each page rendered by Streamlit's AppTest against the demo test database."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from db.session import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _scalar(url, sql: str):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_fleet_map_shows_counts_that_match_the_database(app_env, app_as):
    at = app_as("fleet_manager").run()
    assert not at.exception
    assert at.title[0].value == "Fleet map"
    metrics = _metrics(at)
    not_retired = _scalar(app_env, "SELECT count(*) FROM vehicles WHERE status <> 'retired'")
    available = _scalar(app_env, "SELECT count(*) FROM vehicles WHERE status = 'available'")
    rented = _scalar(app_env, "SELECT count(*) FROM vehicles WHERE status = 'rented'")
    assert metrics["Vehicles shown"] == f"{not_retired:,}"
    assert metrics["Available"] == f"{available:,}"
    assert metrics["Rented"] == f"{rented:,}"
    assert len(at.get("deck_gl_json_chart")) == 1
    assert len(at.dataframe[0].value) == not_retired


def test_fleet_map_filters_by_status(app_env, app_as):
    at = app_as("desk_agent").run()
    at.multiselect(key="status").set_value(["maintenance"]).run()
    assert not at.exception
    in_maintenance = _scalar(app_env, "SELECT count(*) FROM vehicles WHERE status = 'maintenance'")
    assert _metrics(at)["Vehicles shown"] == f"{in_maintenance:,}"
    assert set(at.dataframe[0].value["status"]) <= {"Maintenance"}


def test_fleet_map_filters_by_type_and_branch(app_env, app_as):
    at = app_as("pricing_analyst").run()
    branch_id = _scalar(app_env, "SELECT id FROM locations ORDER BY code LIMIT 1")
    at.multiselect(key="vehicle_type").set_value(["suv"])
    at.multiselect(key="branch").set_value([branch_id]).run()
    assert not at.exception
    expected = _scalar(app_env, f"""
        SELECT count(*) FROM vehicles v JOIN vehicle_types t ON t.id = v.vehicle_type_id
        WHERE t.code = 'suv' AND v.current_location_id = {branch_id} AND v.status <> 'retired'""")
    assert _metrics(at)["Vehicles shown"] == f"{expected:,}"


def test_branches_page_lists_every_branch_with_cars_on_hand(app_env, app_as):
    at = app_as("fleet_manager", "../pages/branches.py").run()
    assert not at.exception
    assert at.title[0].value == "Branches"
    table = at.dataframe[0].value
    assert len(table) == _scalar(app_env, "SELECT count(*) FROM locations")
    on_hand = _scalar(app_env, "SELECT count(*) FROM vehicles WHERE status IN ('available', 'maintenance')")
    assert table["on_hand"].sum() == on_hand
    assert table["hours"].str.len().min() > 0


def test_branch_search_narrows_the_list_and_is_literal(app_env, app_as):
    at = app_as("desk_agent", "../pages/branches.py").run()
    code = _scalar(app_env, "SELECT code FROM locations ORDER BY code LIMIT 1")
    at.text_input(key="branch-search").input(code).run()
    assert list(at.dataframe[0].value["code"]) == [code]
    at.text_input(key="branch-search").input("'; DROP TABLE locations; --").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 0
    assert _scalar(app_env, "SELECT count(*) FROM locations") > 0


def test_the_app_says_what_to_do_when_the_database_is_down(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody:secret@127.0.0.1:9/nowhere")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "cannot be reached" in at.error[0].value
    assert "secret" not in at.error[0].value
    assert not at.title


def test_a_branch_opens_in_detail_from_its_link(app_env, app_as):
    at = app_as("fleet_manager")
    code = _scalar(app_env, "SELECT code FROM locations ORDER BY code LIMIT 1")
    at.query_params["branch"] = code
    at.run().switch_page("../pages/branches.py").run()
    assert not at.exception
    assert at.header[0].value.endswith(code)
    metrics = _metrics(at)
    on_hand = _scalar(app_env, f"""SELECT count(*) FROM vehicles v JOIN locations l ON l.id = v.current_location_id
                                   WHERE l.code = '{code}' AND v.status IN ('available', 'maintenance')""")
    assert metrics["Cars on hand"] == str(on_hand)


def test_an_unknown_branch_link_says_so(app_env, app_as):
    at = app_as("fleet_manager")
    at.query_params["branch"] = "NOPE"
    at.run().switch_page("../pages/branches.py").run()
    assert not at.exception
    assert "no branch 'NOPE'" in at.warning[0].value
