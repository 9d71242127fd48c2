"""Two approvals at once on a committed database: no car is given to both, and one plan is not approved twice."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import RebalancingMove, RebalancingPlan, Transfer, UserRole, Vehicle
from db.session import make_engine
from services import rebalance_planning as rp
from services.actors import Actor
from services.errors import Conflict
from tests import factories as f
from tests.conftest import recreate_database

START = date(2031, 3, 10)
BEFORE = datetime(2031, 3, 9, 12, 0, tzinfo=UTC)
ADMIN = Actor(None, "cli:test", UserRole.ADMIN, "test")
_worlds = itertools.count(1)


@pytest.fixture(scope="module")
def engine(database_url):
    url = database_url.set(database=f"{database_url.database}_concurrent")
    recreate_database(url)
    engine = make_engine(url, pool_size=4, max_overflow=0)
    yield engine
    engine.dispose()
    drop_database(engine.url)


@pytest.fixture
def world(engine):
    """Committed: branch A with three cars free and serviced, B and C close by, and two proposed plans that each
    want two of A's cars on the same night (one to B, one to C)."""
    n = next(_worlds)
    with Session(engine) as s:
        vtype = f.vehicle_type(s)
        a = f.location(s, 51.47, -0.45, code=f"CA{n}")
        b, c = f.location(s, 51.15, -0.18, code=f"CB{n}"), f.location(s, 51.52, -0.08, code=f"CC{n}")
        cars = [f.vehicle(s, vtype, a, last_service_at=datetime(2031, 3, 1, tzinfo=UTC), last_service_km=12_000).id
                for _ in range(3)]
        plans = [_plan(s, a.id, to, vtype.id) for to in (b.id, c.id)]
        s.commit()
    return {"cars": cars, "plans": plans}


def _plan(s: Session, from_id: int, to_id: int, type_id: int) -> int:
    plan = RebalancingPlan(status="proposed", start_date=START, horizon_days=2, solver_status="optimal",
                           objective=Decimal("106"), move_cost=Decimal("106"), lost_sale_cost=Decimal("0"),
                           baseline_cost=Decimal("160"), currency="GBP", demand_total=2, lost_sales=0,
                           baseline_lost_sales=2, cars_moved=2, demand_source="forecast", solve_seconds=Decimal("0.1"),
                           settings={"hold_days": 2}, lost_detail=[])
    s.add(plan)
    s.flush()
    s.add(RebalancingMove(plan_id=plan.id, from_location_id=from_id, to_location_id=to_id, vehicle_type_id=type_id,
                          day=0, night_of=START - timedelta(days=1), count=2, distance_km=Decimal("40.0"),
                          unit_cost=Decimal("53.00")))
    return plan.id


def _transfers(engine, cars: list[int]) -> list[tuple[int, int]]:
    with Session(engine) as s:
        return [tuple(r) for r in s.execute(select(Transfer.vehicle_id, Transfer.plan_id)
                                            .where(Transfer.vehicle_id.in_(cars)))]


def test_an_approval_skips_the_cars_another_is_assigning_and_reports_the_shortfall(engine, world):
    first_plan, second_plan = world["plans"]
    with Session(engine) as first, Session(engine) as second:
        one = rp.approve_plan(first, ADMIN, first_plan, now=BEFORE)  # holds its two cars, not yet committed
        two = rp.approve_plan(second, ADMIN, second_plan, now=BEFORE)
        first.commit()
        second.commit()
    assert len(one.transfer_ids) == 2 and one.shortfalls == ()
    assert len(two.transfer_ids) == 1 and "1 of 2 cars" in two.shortfalls[0]
    given = _transfers(engine, world["cars"])
    assert sorted(v for v, _ in given) == sorted(world["cars"])  # each car once


def test_an_approval_passes_over_a_car_being_booked_at_that_moment(engine, world):
    first_car = world["cars"][0]
    with Session(engine) as desk, Session(engine) as manager:
        car = desk.get(Vehicle, first_car)
        f.booking(desk, car, f.customer(desk), datetime(2031, 3, 10, 8, tzinfo=UTC),
                  datetime(2031, 3, 12, 8, tzinfo=UTC))  # not committed yet: the car's row is locked
        approval = rp.approve_plan(manager, ADMIN, world["plans"][0], now=BEFORE)
        manager.commit()
        desk.commit()
    assert approval.shortfalls == ()
    assert sorted(v for v, _ in _transfers(engine, world["cars"])) == sorted(world["cars"][1:])


def test_two_approvals_racing_never_give_a_car_twice(engine, world):
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def approve(plan_id: int) -> None:
        with Session(engine) as s:
            barrier.wait()
            try:
                outcomes.append(rp.approve_plan(s, ADMIN, plan_id, now=BEFORE))
                s.commit()
            except Conflict as refused:  # the database refused a clash: acceptable, nothing half-written
                outcomes.append(refused)

    threads = [threading.Thread(target=approve, args=(p,)) for p in world["plans"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    given = _transfers(engine, world["cars"])
    vehicles = [v for v, _ in given]
    assert len(vehicles) == len(set(vehicles)) <= 3
    approved = [o for o in outcomes if isinstance(o, rp.Approval)]
    assert sum(len(o.transfer_ids) for o in approved) == len(given) >= 2
    with Session(engine) as s:
        overlapping = s.execute(text("""
            SELECT count(*) FROM transfers x JOIN transfers y ON x.vehicle_id = y.vehicle_id AND x.id < y.id
            WHERE x.vehicle_id = ANY(:cars) AND tstzrange(x.depart_at, x.arrive_at) && tstzrange(y.depart_at, y.arrive_at)
        """), {"cars": world["cars"]}).scalar()
    assert overlapping == 0


def test_one_plan_approved_twice_at_once_is_refused_the_second_time(engine, world):
    plan_id = world["plans"][0]
    with Session(engine) as first, Session(engine) as second:
        rp.approve_plan(first, ADMIN, plan_id, now=BEFORE)
        with pytest.raises(Conflict, match="being approved or discarded by someone else"):
            rp.approve_plan(second, ADMIN, plan_id, now=BEFORE)
        first.commit()
    assert len(_transfers(engine, world["cars"])) == 2


def drop_database(url) -> None:
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
