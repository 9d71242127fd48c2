"""Customers the desk turned away, on a real PostGIS: recorded with who and why, audited and evented; bad input
refused with a message and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.models import AuditEntry, DomainEvent, TurnedAway, UserRole
from services import lost_demand
from services.actors import Actor, Forbidden
from services.errors import InvalidInput, NotFound
from tests import factories as f

PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def desk(session) -> Actor:
    user = f.customer(session, role=UserRole.DESK_AGENT)
    return Actor(user.id, user.email, UserRole.DESK_AGENT, user.full_name)


@pytest.fixture
def branch(session):
    f.vehicle_type(session, code="van")
    return f.location(session, code="LOST")


def record(session, actor, branch, **changes):
    values = dict(location_id=branch.id, vehicle_type="van", pickup_at=PICKUP, dropoff_at=PICKUP + timedelta(days=2),
                  reason="no_car", note="  needed a 7-seater  ")
    return lost_demand.record_turned_away(session, actor, **(values | changes))


def test_a_customer_turned_away_is_recorded_audited_and_evented(session, desk, branch):
    view = record(session, desk, branch)
    assert (view.branch, view.vehicle_type, view.reason) == ("LOST", "van", "No suitable car free")
    row = session.get(TurnedAway, view.id)
    assert (row.reason, row.note, row.channel, row.recorded_by) == ("no_car", "needed a 7-seater", "desk", desk.user_id)
    entry = session.query(AuditEntry).filter_by(action="demand.turned_away", entity_id=str(view.id)).one()
    assert entry.actor_label == desk.label and entry.changes["reason"] == {"before": None, "after": "no_car"}
    event = session.query(DomainEvent).filter_by(event_type="demand.turned_away").one()
    assert event.payload["id"] == view.id and event.payload["pickup_at"] == PICKUP.isoformat()


@pytest.mark.parametrize("changes, message", [
    ({"reason": "weather"}, "Say why the customer left"),
    ({"dropoff_at": PICKUP - timedelta(hours=1)}, "choose a drop-off after the pick-up"),
    ({"pickup_at": datetime(2030, 5, 6, 9, 0)}, "has no time zone"),
    ({"dropoff_at": PICKUP + timedelta(days=800)}, "at most two years"),
    ({"note": "x" * 501}, "keep it under 500"),
])
def test_bad_input_is_refused_with_what_to_change_and_nothing_written(session, desk, branch, changes, message):
    with pytest.raises(InvalidInput, match=message):
        record(session, desk, branch, **changes)
    assert session.query(TurnedAway).count() == 0


def test_an_unknown_branch_or_type_is_named(session, desk, branch):
    with pytest.raises(NotFound, match="no branch with id 999999"):
        record(session, desk, branch, location_id=999_999)
    with pytest.raises(NotFound, match="no vehicle type 'limo'"):
        record(session, desk, branch, vehicle_type="limo")


def test_only_desk_staff_record_them(session, branch):
    user = f.customer(session, role=UserRole.PRICING_ANALYST)
    analyst = Actor(user.id, user.email, UserRole.PRICING_ANALYST, user.full_name)
    with pytest.raises(Forbidden, match="record customers turned away"):
        record(session, analyst, branch)
