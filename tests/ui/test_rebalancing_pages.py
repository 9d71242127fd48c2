"""The Rebalancing and Transfers pages through Streamlit's AppTest, signed in as a fleet manager, on a committed
database of their own.

The clock is the real one: day 0 is tomorrow. Car RB21 AAA stands at Heathrow but is booked to be picked up at
Gatwick on day 1, so the plan must move a car there the night before — and approval must pick that very car.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest

from db.session import make_engine, session_scope
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.ui.page_helpers import clear_caches, point_app_at, signed_in

LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def page_db(database_url):
    url = database_url.set(database=f"{database_url.database}_rebalui")
    recreate_database(url)
    engine = make_engine(url)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    serviced = dict(last_service_at=datetime.now(UTC) - timedelta(days=10), last_service_km=11_000)
    with session_scope(engine) as session:
        economy = f.vehicle_type(session, code="economy", name="Economy", base_daily_rate=Decimal("40.00"))
        heathrow = f.location(session, 51.47, -0.45, code="RHRW", name="Rebal Heathrow")
        gatwick = f.location(session, 51.15, -0.18, code="RGTW", name="Rebal Gatwick")
        booked = f.vehicle(session, economy, heathrow, license_plate="RB21 AAA", **serviced)
        for plate in ("RB21 BBB", "RB21 CCC"):
            f.vehicle(session, economy, heathrow, license_plate=plate, **serviced)
        pickup = datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), LONDON) + timedelta(hours=10)
        f.booking(session, booked, f.customer(session), pickup.astimezone(UTC),
                  (pickup + timedelta(days=2)).astimezone(UTC), pickup_location_id=gatwick.id,
                  dropoff_location_id=gatwick.id)
    engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(autouse=True)
def app_db(page_db, monkeypatch):
    point_app_at(monkeypatch, page_db)
    yield page_db
    clear_caches()


def _open_rebalancing():
    at = signed_in("fleet_manager", "rebalancing.py", state={"rebalancing-forecast": False})
    at.run()
    assert not at.exception, at.exception
    return at


def _table(at, column: str):
    """The dataframe showing this column (tables without selection carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_supply_shows_the_shortfall_at_the_branch_a_booked_car_is_missing_from(page_db):
    at = _open_rebalancing()
    assert at.title[0].value == "Rebalancing"
    assert any("booked pick-ups only" in w.value for w in at.warning)
    table = _table(at, "surplus").set_index("code")
    assert table.loc["RHRW", "free_cars"] == 3
    at.select_slider(key="rebalancing-map-day").set_value(datetime.now(UTC).date() + timedelta(days=2))  # day 1
    at.run()
    table = _table(at, "surplus").set_index("code")
    assert table.loc["RGTW", "booked_pickups"] == 1 and table.loc["RHRW", "free_cars"] == 2
    assert (table.loc["RGTW", "short"], table.loc["RHRW", "spare"]) == (1, 3)  # by type, not by car
    assert {m.label: m.value for m in at.metric}["Rentals lost over the horizon"] == "1"
    assert len(at.get("deck_gl_json_chart")) == 1


def test_a_fleet_manager_plans_approves_and_the_transfers_page_completes_the_move(page_db):
    at = _open_rebalancing()
    at.button(key="FormSubmitter:rebalancing-settings-Make a plan").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    moves = _table(at, "from_code")
    assert list(zip(moves["from_code"], moves["to_code"], moves["count"], strict=True)) == [("RHRW", "RGTW", 1)]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cars moved"] == "1" and metrics["Demand covered"] == "100.0%"
    assert len(at.get("deck_gl_json_chart")) == 2  # the supply map and the arcs
    plan_id = scalar(page_db, "SELECT max(id) FROM rebalancing_plans")
    at.button(key=f"approve-{plan_id}").click().run()
    assert not at.exception, at.exception
    assert any(f"Plan #{plan_id} approved: 1 transfers planned" in s.value for s in at.success)
    assert scalar(page_db, "SELECT v.license_plate FROM transfers t JOIN vehicles v ON v.id = t.vehicle_id "
                           "WHERE t.plan_id = :plan", plan=plan_id) == "RB21 AAA"

    transfers = signed_in("fleet_manager", "transfers.py")
    assert not transfers.exception, transfers.exception
    assert transfers.title[0].value == "Transfers"
    table = transfers.dataframe(key="transfer-table-0").value
    assert list(table["plate"]) == ["RB21 AAA"] and list(table["state"]) == ["Planned"]
    transfer_id = int(table["id"].iloc[0])
    transfers.session_state["transfer-table-0"] = {"selection": {"rows": [0], "columns": []}}
    transfers.run()
    transfers.button(key=f"depart-{transfer_id}").click().run()
    assert not transfers.exception, transfers.exception
    assert any("is in transit to RGTW" in s.value for s in transfers.success)
    assert scalar(page_db, "SELECT status::text FROM vehicles WHERE license_plate = 'RB21 AAA'") == "in_transit"
    assert any("Select a transfer" in c.value for c in transfers.caption)  # the selection went with the change
    transfers.session_state["transfer-table-1"] = {"selection": {"rows": [0], "columns": []}}  # a fresh table
    transfers.run()
    transfers.button(key=f"arrive-{transfer_id}").click().run()
    assert not transfers.exception, transfers.exception
    assert scalar(page_db, "SELECT l.code FROM vehicles v JOIN locations l ON l.id = v.current_location_id "
                           "WHERE v.license_plate = 'RB21 AAA' AND v.status = 'available'") == "RGTW"


def test_a_second_plan_is_shown_instead_of_the_first_and_the_first_can_be_picked_again(page_db):
    at = _open_rebalancing()
    at.button(key="FormSubmitter:rebalancing-settings-Make a plan").click().run()
    first = scalar(page_db, "SELECT max(id) FROM rebalancing_plans")
    at.number_input(key="plan-cap").set_value(0)
    at.button(key="FormSubmitter:rebalancing-settings-Make a plan").click().run()
    assert not at.exception, at.exception
    second = scalar(page_db, "SELECT max(id) FROM rebalancing_plans")
    assert second == first + 1 and at.selectbox(key="rebalancing-plan-picker").value == second
    assert {m.label: m.value for m in at.metric}["Cars moved"] == "0"
    assert any("No move pays for itself" in s.value for s in at.success)
    assert any(c.value.startswith(f"Plan #{second}, proposed") for c in at.caption)
    at.selectbox(key="rebalancing-plan-picker").set_value(first).run()
    assert any(c.value.startswith(f"Plan #{first}, proposed") for c in at.caption)


def test_excluding_every_other_branch_is_explained_not_a_traceback(page_db):
    at = _open_rebalancing()
    gatwick = scalar(page_db, "SELECT id FROM locations WHERE code = 'RGTW'")
    at.multiselect(key="plan-excluded").set_value([gatwick])
    at.button(key="FormSubmitter:rebalancing-settings-Make a plan").click().run()
    assert not at.exception, at.exception
    assert any("Only one branch is left" in e.value for e in at.error)


def test_desk_agents_are_refused_the_rebalancing_page(page_db):
    at = signed_in("desk_agent", "rebalancing.py")
    assert any("is for fleet managers" in e.value for e in at.error)
    assert not at.get("deck_gl_json_chart")


def drop_database(url) -> None:
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def test_planning_from_today_says_when_the_first_moves_can_leave(page_db):
    at = _open_rebalancing()
    today = datetime.now(UTC).date()  # the page's today, the earliest start it offers
    at.date_input(key="rebalancing-start").set_value(today).run()
    assert not at.exception, at.exception
    notes = [i.value for i in at.info if "the first moves leave" in i.value]
    # before 20:00 tonight's cars can still leave (for tomorrow); after it, tomorrow evening's are the first
    evenings = [today + timedelta(days=k) for k in (0, 1)]
    assert len(notes) == 1 and any(f"leave on the evening of {e:%a %d %b}" in notes[0] for e in evenings), notes

