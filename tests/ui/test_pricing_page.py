"""The Pricing page: the demand fit an analyst can judge, the optimiser run, and publishing with a confirmation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import URL

from db.session import make_engine, session_scope
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.ui.page_helpers import point_app_at, signed_in


@pytest.fixture(scope="module")
def pricing_db(database_url: URL) -> URL:
    """A committed small company with four months of history, of its own: publishing here changes no other test."""
    from data.demo import DemoSpec, load_demo

    url = database_url.set(database=f"{database_url.database}_pricing_ui")
    recreate_database(url)
    engine = make_engine(url)
    now = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC)
    with session_scope(engine) as session:
        load_demo(session, DemoSpec(branches=4, vehicles=240, history_days=120, seed=5), now=now)
    engine.dispose()
    return url


@pytest.fixture
def pricing_page(pricing_db, monkeypatch):
    point_app_at(monkeypatch, pricing_db)
    return lambda role="pricing_analyst": signed_in(role, "pricing.py")


def _table_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_the_analyst_sees_the_fit_with_its_elasticities_and_charts(pricing_page):
    at = pricing_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Pricing"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["History"] == "120 days"
    assert metrics["Price levels in the history"] == "0.8, 0.9, 1, 1.1, 1.25"
    elasticities = _table_with(at, "std_error")
    assert list(elasticities["code"]) == ["economy", "compact", "midsize", "suv", "van", "premium"]
    assert (elasticities["elasticity"] > 0).all()
    charts = [c for c in at.get("arrow_vega_lite_chart")] or [c for c in at.get("vega_lite_chart")]
    assert len(charts) >= 2  # observed against fitted, by weekday and by price
    at.selectbox(key="pricing-fit-type").select("suv").run()
    assert not at.exception


def test_a_run_shows_the_proposal_against_the_current_rates_and_publishing_needs_a_confirmation(
        pricing_page, pricing_db):
    at = pricing_page()
    at.number_input(key="pricing-days").set_value(5)
    at.number_input(key="pricing-time-limit").set_value(10.0)
    _button(at, "Run the optimiser").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m for m in at.metric}
    assert metrics["Solution"].value in ("optimal", "feasible")
    assert metrics["Expected revenue"].value.startswith("£")
    assert "vs current" in (metrics["Expected revenue"].delta or "")
    assert _table_with(at, "current_multiplier").shape[0] == 3 * 6 * 5

    before = scalar(pricing_db, "SELECT count(*) FROM rate_publications")
    _button(at, "Publish rates").click().run()
    assert "Tick “I have reviewed these rates”" in at.error[0].value
    assert scalar(pricing_db, "SELECT count(*) FROM rate_publications") == before

    at.checkbox(key="pricing-publish-confirm").check()
    at.text_input(key="pricing-publish-note").input("weekend test")
    _button(at, "Publish rates").click().run()
    assert not at.exception and not at.error
    assert "Published as publication #" in at.success[0].value
    assert scalar(pricing_db, "SELECT count(*) FROM rate_publications") == before + 1
    assert scalar(pricing_db, "SELECT count(*) FROM published_rates WHERE publication_id = "
                              "(SELECT max(id) FROM rate_publications)") == 3 * 6 * 5
    assert scalar(pricing_db, "SELECT changes->>'_note' FROM audit_log WHERE entity_type = 'rate_publication' "
                              "ORDER BY id DESC LIMIT 1") == "weekend test"


def test_a_run_without_branches_says_what_to_do(pricing_page):
    at = pricing_page()
    at.multiselect(key="pricing-branches").set_value([])
    _button(at, "Run the optimiser").click().run()
    assert not at.exception
    assert "Choose at least one branch" in at.error[0].value


def test_a_desk_agent_is_refused_the_page(pricing_page):
    at = pricing_page("desk_agent")
    assert not at.exception
    assert any("ask an admin if you need access" in e.value for e in at.error)
    assert not at.dataframe and not at.metric
