"""Rebalancing the live fleet on a real PostGIS: supply read from bookings, blocks and transfers; a plan from the
optimiser kept for review; approval assigns the right cars (free, unbooked, not due for service)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import select

from db.models import (
    AuditEntry,
    BookingStatus,
    DomainEvent,
    RebalancingPlan,
    Transfer,
    UserRole,
    VehicleStatus,
)
from services import rebalance_planning as rp
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput
from services.optimise.rebalance import haversine_km
from tests import factories as f

START = date(2030, 6, 10)  # day 0; London is UTC+1 then
BEFORE = datetime(2030, 6, 9, 12, 0, tzinfo=UTC)  # approving the afternoon before the first night


def utc(day: int, hour: int) -> datetime:
    return datetime(2030, 6, day, hour, 0, tzinfo=UTC)


@pytest.fixture
def fleet(session) -> Actor:
    user = f.customer(session, role=UserRole.FLEET_MANAGER)
    return Actor(user.id, user.email, UserRole.FLEET_MANAGER, user.full_name)


@pytest.fixture
def world(session):
    """A (Heathrow) has five cars of the type, B (Gatwick, 40 km away) none, C (Edinburgh, far away) one.

    car1 is booked from A on day 1; car4 is past its service interval; car5 goes to the workshop on day 0; car6 is
    out on a one-way rental from A that ends at B on day 2."""
    vtype = f.vehicle_type(session, base_daily_rate=Decimal("40.00"), service_interval_km=15_000,
                           service_interval_days=365)
    a, b = f.location(session, 51.47, -0.45, code="HRW"), f.location(session, 51.15, -0.18, code="GTW")
    c = f.location(session, 55.95, -3.19, code="EDI")
    serviced = dict(last_service_at=utc(1, 9) - timedelta(days=30), last_service_km=10_000, odometer_km=12_000)
    cars = {n: f.vehicle(session, vtype, a, license_plate=f"RB{n} AAA", **serviced) for n in range(1, 7)}
    cars[7] = f.vehicle(session, vtype, c, license_plate="RB7 AAA", **serviced)
    cars[4].odometer_km = 26_000  # 16,000 km since its service: due
    driver = f.customer(session)
    f.booking(session, cars[1], driver, utc(11, 9), utc(13, 9))
    f.maintenance(session, cars[5], utc(10, 9), utc(11, 9))
    f.booking(session, cars[6], driver, utc(8, 9), utc(12, 9), dropoff_location_id=b.id,
              status=BookingStatus.PICKED_UP)
    cars[6].status = VehicleStatus.RENTED
    session.flush()
    forecast = pd.DataFrame([(b.id, vtype.id, START, 2.2), (c.id, vtype.id, START, 3.0)],
                            columns=["location_id", "vehicle_type_id", "day", "expected_pickups"])
    return {"type": vtype, "a": a, "b": b, "c": c, "cars": cars, "forecast": forecast}


def _cell(supply: rp.Supply, location, day: int, column: str) -> int:
    cells = supply.cells
    return int(cells[(cells["location_id"] == location.id) & (cells["d"] == day)][column].sum())


def _plan(session, fleet, world, *, now: datetime = BEFORE, forecast: pd.DataFrame | None = None,
          **settings) -> rp.PlanView:
    supply = rp.supply(session, START, 4, forecast=world["forecast"] if forecast is None else forecast)
    return rp.make_plan(session, fleet, rp.PlanSettings(start=START, horizon_days=4, **settings), supply, now=now)


def test_supply_reads_cars_on_hand_bookings_drift_and_the_workshop(session, world):
    supply = rp.supply(session, START, 4, forecast=world["forecast"])
    a, b, c = world["a"], world["b"], world["c"]
    assert supply.demand_source == "forecast"
    assert _cell(supply, a, 0, "initial") == 5  # car6 is out on its rental
    assert _cell(supply, c, 0, "initial") == 1
    assert _cell(supply, a, 0, "workshop_out") == 1 and _cell(supply, a, 1, "returns") == 1  # car5's block
    assert _cell(supply, a, 1, "booked_pickups") == 1 and _cell(supply, a, 3, "returns") == 1  # car1's rental
    assert _cell(supply, b, 2, "returns") == 1  # car6 drifts to B
    assert _cell(supply, b, 0, "expected_pickups") == 2  # 2.2 expected, rounded
    assert _cell(supply, a, 1, "expected_pickups") == 1  # booked, though no forecast
    assert _cell(supply, a, 0, "in_maintenance") == 1
    assert _cell(supply, a, 0, "free_cars") == 4  # all day: car1 to car4 (car5 is in the workshop)
    assert _cell(supply, a, 1, "free_cars") == 3  # car1 is picked up
    assert (_cell(supply, a, 0, "spare"), _cell(supply, a, 1, "spare")) == (4, 4)  # if nothing moves
    assert (_cell(supply, b, 0, "short"), _cell(supply, b, 2, "spare")) == (2, 1)
    by_branch = supply.by_branch(0).set_index("code")
    assert by_branch.loc["GTW", "surplus"] == -2 and by_branch.loc["EDI", "surplus"] == -2


def test_supply_without_a_forecast_is_labelled_booked(session, world):
    supply = rp.supply(session, START, 4)
    assert supply.demand_source == "booked"
    assert _cell(supply, world["b"], 0, "expected_pickups") == 0


def test_the_plan_moves_cars_within_reach_and_is_kept_for_review(session, fleet, world):
    plan = _plan(session, fleet, world)
    a, b = world["a"], world["b"]
    assert plan.status == "proposed" and plan.solver_status == "optimal"
    moves = plan.moves[["from_code", "to_code", "vehicle_type", "day", "night_of", "count"]].to_dict("records")
    assert moves == [{"from_code": "HRW", "to_code": "GTW", "vehicle_type": world["type"].code, "day": 0,
                      "night_of": date(2030, 6, 9), "count": 2}]
    km = haversine_km(pd.Series([51.47, 51.15]).to_numpy(), pd.Series([-0.45, -0.18]).to_numpy())[0, 1]
    unit = (Decimal("25") + Decimal("0.70") * Decimal(str(km))).quantize(Decimal("0.01"))
    assert plan.moves["unit_cost"].iloc[0] == unit
    assert (plan.lost_sales, plan.baseline_lost_sales, plan.demand_total) == (2, 4, 7)  # EDI is out of reach
    assert plan.move_cost == 2 * unit and plan.lost_sale_cost == Decimal("160.00")
    assert plan.objective == 2 * unit + Decimal("160.00") and plan.baseline_cost == Decimal("320.00")
    assert plan.covered_pct > plan.baseline_covered_pct
    assert plan.settings["move_fixed_cost"] == "25" and (a.id, b.id) == tuple(plan.moves[["from_id", "to_id"]].iloc[0])
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "rebalancing.planned"))
    assert entry.entity_id == str(plan.id) and entry.changes["cars_moved"]["after"] == 2
    assert session.scalar(select(DomainEvent).where(DomainEvent.event_type == "rebalancing.planned")) is not None


def test_excluding_a_branch_or_capping_moves_changes_the_plan(session, fleet, world):
    excluded = _plan(session, fleet, world, excluded_location_ids=(world["b"].id,))
    assert excluded.cars_moved == 0 and excluded.demand_total == 5
    capped = _plan(session, fleet, world, max_moves_out=1)
    assert capped.cars_moved == 1 and capped.lost_sales == 3


def test_approval_assigns_free_unbooked_cars_not_due_for_service(session, fleet, world):
    plan = _plan(session, fleet, world)
    approval = rp.approve_plan(session, fleet, plan.id, now=BEFORE)
    assert approval.shortfalls == ()
    rows = session.scalars(select(Transfer).where(Transfer.plan_id == plan.id).order_by(Transfer.vehicle_id)).all()
    cars = world["cars"]
    assert [t.vehicle_id for t in rows] == [cars[2].id, cars[3].id]
    assert {(t.from_location_id, t.to_location_id, t.status.value) for t in rows} == {
        (world["a"].id, world["b"].id, "planned")}
    assert rows[0].depart_at == utc(9, 19)  # 20:00 in London the evening before day 0
    assert rows[0].cost == plan.moves["unit_cost"].iloc[0] and rows[0].move_id == int(plan.moves["id"].iloc[0])
    assert approval.plan.status == "approved" and int(approval.plan.moves["assigned"].iloc[0]) == 2
    assert session.scalar(select(AuditEntry.action).where(AuditEntry.action == "rebalancing.approved"))
    event = session.scalar(select(DomainEvent).where(DomainEvent.event_type == "rebalancing.approved"))
    assert sorted(event.payload["transfer_ids"]) == sorted(t.id for t in rows)
    with pytest.raises(Conflict, match=f"Plan #{plan.id} was already approved"):
        rp.approve_plan(session, fleet, plan.id, now=BEFORE)


def test_a_car_booked_since_the_plan_leaves_a_reported_shortfall(session, fleet, world):
    plan = _plan(session, fleet, world)
    f.booking(session, world["cars"][3], f.customer(session), utc(10, 8), utc(10, 18))
    approval = rp.approve_plan(session, fleet, plan.id, now=BEFORE)
    assert len(approval.transfer_ids) == 1
    assert approval.shortfalls and "1 of 2 cars" in approval.shortfalls[0] and "HRW" in approval.shortfalls[0]


def test_a_plan_whose_first_night_has_passed_is_refused(session, fleet, world):
    plan = _plan(session, fleet, world)
    with pytest.raises(Conflict, match="which has passed; make a new plan"):
        rp.approve_plan(session, fleet, plan.id, now=utc(9, 21))
    assert session.get(RebalancingPlan, plan.id).status == "proposed"


def test_a_plan_made_after_the_first_nights_departure_moves_cars_from_the_next_night_and_can_be_approved(
        session, fleet, world):
    settings = rp.PlanSettings(start=START, horizon_days=4)
    assert rp.first_move_day(session, settings, now=utc(9, 18) + timedelta(minutes=59)) == 0
    assert rp.first_move_day(session, settings, now=utc(9, 19)) == 1  # 20:00 in London on the evening before day 0
    assert rp.first_move_day(session, settings, now=utc(11, 22)) == 3
    assert rp.first_move_day(session, settings, now=utc(20, 0)) == 4  # every night has passed
    also_day_1 = pd.concat([world["forecast"], pd.DataFrame([(world["b"].id, world["type"].id, START + timedelta(days=1),
                                                              1.0)], columns=world["forecast"].columns)])
    plan = _plan(session, fleet, world, now=utc(9, 19), forecast=also_day_1)
    moves = plan.moves[["from_code", "to_code", "day", "night_of", "count"]].to_dict("records")
    assert moves == [{"from_code": "HRW", "to_code": "GTW", "day": 1, "night_of": START, "count": 1}]
    assert plan.lost_sales == 4  # GTW's two on day 0 can no longer be reached, EDI's two never could
    approval = rp.approve_plan(session, fleet, plan.id, now=utc(9, 19))
    assert len(approval.transfer_ids) == 1 and approval.shortfalls == ()
    assert session.get(Transfer, approval.transfer_ids[0]).depart_at == utc(10, 19)


def test_a_plan_with_no_night_left_to_move_on_is_refused(session, fleet, world):
    supply = rp.supply(session, START, 1, forecast=world["forecast"])
    with pytest.raises(InvalidInput, match="No car can move in time for Mon 10 Jun any more"):
        rp.make_plan(session, fleet, rp.PlanSettings(start=START, horizon_days=1), supply, now=utc(9, 19))
    assert session.scalar(select(RebalancingPlan.id)) is None


def test_a_discarded_plan_cannot_be_approved(session, fleet, world):
    plan = _plan(session, fleet, world)
    rp.discard_plan(session, fleet, plan.id, now=BEFORE)
    with pytest.raises(Conflict, match="already discarded"):
        rp.approve_plan(session, fleet, plan.id, now=BEFORE)


def test_bad_settings_are_refused_with_what_is_allowed(session, fleet, world):
    supply = rp.supply(session, START, 4, forecast=world["forecast"])
    with pytest.raises(InvalidInput, match="more than 0 km"):
        rp.make_plan(session, fleet, rp.PlanSettings(start=START, horizon_days=4, max_move_km=Decimal("0")), supply)
    with pytest.raises(InvalidInput, match="Only one branch"):
        rp.make_plan(session, fleet, rp.PlanSettings(start=START, horizon_days=4,
                                                     excluded_location_ids=(world["a"].id, world["b"].id)), supply)
    with pytest.raises(InvalidInput, match="another horizon"):
        rp.make_plan(session, fleet, rp.PlanSettings(start=START, horizon_days=5), supply)
    with pytest.raises(InvalidInput, match="1 to 28 days"):
        rp.supply(session, START, 40)


def test_parking_capacity_that_cannot_hold_the_cars_is_explained(session, fleet, world):
    for branch in ("a", "b", "c"):
        world[branch].parking_capacity = 1  # six cars, three spaces
    session.flush()
    with pytest.raises(Conflict, match="do not fit the total parking capacity of 3.*Untick 'respect parking"):
        _plan(session, fleet, world, use_parking_capacity=True, time_limit_s=10.0)


def test_desk_agents_cannot_plan(session, world):
    supply = rp.supply(session, START, 4, forecast=world["forecast"])
    with pytest.raises(Forbidden):
        rp.make_plan(session, Actor(None, "desk@example.test", UserRole.DESK_AGENT),
                     rp.PlanSettings(start=START, horizon_days=4), supply)
