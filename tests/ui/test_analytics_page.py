"""The Analytics page, rendered by AppTest against the committed demo company, and its PDF report."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import text

from app.ui.analytics import COMPANY_ZONE, KEY
from app.ui.analytics_report import render_report
from db.session import make_engine, session_scope
from services import analytics
from services.analytics import METRICS, AnalyticsFilter
from tests.unit.test_agreement import pdf_text

PAGE = "../pages/analytics.py"


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def engine(app_env):
    engine = make_engine(app_env)
    yield engine
    engine.dispose()


@pytest.fixture
def built(engine):
    with session_scope(engine) as session:
        analytics.refresh(session, full=True)
    return engine


def this_month() -> AnalyticsFilter:
    today = datetime.now(COMPANY_ZONE).date()
    return AnalyticsFilter(start=today.replace(day=1), end=today)


def test_before_the_figures_are_built_the_page_says_so_and_builds_them(app_as, engine):
    with session_scope(engine) as session:
        session.execute(text("DELETE FROM app_meta WHERE key = 'analytics'"))
    at = app_as("fleet_manager", PAGE).run()
    assert not at.exception and at.title[0].value == "Analytics"
    assert "not been built yet" in at.info[0].value and not at.metric
    at.button(key=KEY + "refresh").click().run()
    assert not at.exception
    assert len(at.metric) == len(METRICS) + 3
    with session_scope(engine) as session:
        assert analytics.refreshed_at(session) is not None


def test_a_fleet_manager_sees_every_figure_against_the_previous_period(app_as, built):
    at = app_as("fleet_manager", PAGE).run()
    assert not at.exception and not at.error
    tiles = {m.label: m for m in at.metric}
    with session_scope(built) as session:
        expected = {f.spec.label: f for f in analytics.headline(session, this_month())}
    assert set(tiles) == set(expected)
    utilisation = expected["Time utilisation"]
    assert tiles["Time utilisation"].value == f"{utilisation.value * 100:.1f}%"
    revenue = expected["Revenue"].value
    assert tiles["Revenue"].value == (f"£{revenue:,.0f}" if revenue >= 10_000 else f"£{revenue:,.2f}")
    change = expected["Cancellations"].change
    assert tiles["Cancellations"].delta == f"{'+' if change >= 0 else '-'}{abs(change):,}"
    assert tiles["Cancellations"].value == f"{expected['Cancellations'].value:,}"
    assert "Rented car-days / available car-days" in tiles["Time utilisation"].proto.help


def test_the_branch_table_puts_the_least_used_first_and_explains(app_as, built):
    at = app_as("pricing_analyst", PAGE).run()
    table = at.dataframe[0].value
    with session_scope(built) as session:
        expected = analytics.by_branch(session, this_month())
    assert list(table["code"]) == list(expected["code"])
    utilisation = table["utilisation"].dropna().astype(float)
    assert utilisation.is_monotonic_increasing
    assert "reasons" in table.columns
    downloads = [button.proto.label for button in at.download_button]
    assert "Download branches as CSV" in downloads and "Download this page as a PDF report" in downloads
    assert len(at.get("deck_gl_json_chart")) == 1


def test_narrowing_to_a_branch_and_a_type_narrows_the_figures(app_as, built):
    with session_scope(built) as session:
        branch = session.execute(text("SELECT id, code FROM locations ORDER BY code LIMIT 1")).one()
        vtype = session.execute(text("SELECT code FROM vehicle_types ORDER BY code LIMIT 1")).scalar_one()
        period = AnalyticsFilter(this_month().start, this_month().end, location_ids=(branch.id,), type_codes=(vtype,))
        expected = {f.spec.label: f for f in analytics.headline(session, period)}
    at = app_as("fleet_manager", PAGE).run()
    at.multiselect(key=KEY + "branches").set_value([branch.id])
    at.multiselect(key=KEY + "types").set_value([vtype]).run()
    assert not at.exception
    assert list(at.dataframe[0].value["code"]) == [branch.code]
    revenue = expected["Revenue"].value
    assert {m.label: m.value for m in at.metric}["Revenue"] == (f"£{revenue:,.0f}" if revenue >= 10_000
                                                                  else f"£{revenue:,.2f}")


def test_a_period_longer_than_two_years_is_refused_with_what_to_do(app_as, built):
    at = app_as("fleet_manager", PAGE).run()
    today = datetime.now(COMPANY_ZONE).date()
    at.date_input(key=KEY + "period").set_value((today - timedelta(days=900), today)).run()
    assert not at.exception
    assert "pick at most 731 days" in at.error[0].value
    assert not at.metric


def test_the_pdf_report_has_the_headlines_and_the_branches(built):
    with session_scope(built) as session:
        view = analytics.overview(session, this_month())
    report = render_report(view, "GBP", filters="All branches", generated_at=datetime(2026, 11, 26))
    assert report.startswith(b"%PDF")
    words = pdf_text(report)
    assert "Operations analytics" in words and "Time utilisation" in words and "RevPAC" in words
    assert view.by_branch.iloc[0]["code"] in words
    assert "Rented car-days / available car-days" in words


def test_the_previous_period_is_as_long_and_ends_the_day_before():
    before = AnalyticsFilter(date(2026, 3, 1), date(2026, 3, 31)).previous()
    assert (before.start, before.end) == (date(2026, 1, 29), date(2026, 2, 28))
