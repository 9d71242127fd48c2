"""Vehicles on a real PostGIS: every field checked with a message that says what to fix, plates unique however
they are typed, audited edits, status changes by hand with their rules, retirement, and the CSV import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text

from db.models import AuditEntry, DomainEvent, MaintenanceBlock, UserRole, Vehicle, VehicleStatus
from services import vehicle_import, vehicles
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput
from services.vehicle_fields import VehicleInputError, canonical_plate
from services.vehicles import DuplicateVehicle
from services.vin import check_digit
from tests import factories as f

NOW = datetime.now(UTC)
NEXT_YEAR = NOW.year + 1
VIN = "1M8GDM9AXKP042788"
VIN2 = "1HGCM82633A004352"


def good_vin(n: int) -> str:
    """A distinct VIN whose check digit is right."""
    body = f.vin(20_000_000 + n)
    return body[:8] + check_digit(body) + body[9:]


def staff(session, role: UserRole) -> Actor:
    user = f.customer(session, role=role)
    return Actor(user.id, user.email, role, user.full_name)


@pytest.fixture
def fleet(session) -> Actor:
    return staff(session, UserRole.FLEET_MANAGER)


@pytest.fixture
def admin(session) -> Actor:
    return staff(session, UserRole.ADMIN)


@pytest.fixture
def world(session):
    """One vehicle type and two branches with codes the tests can name."""
    compact = f.vehicle_type(session, code="compact_vt", name="Compact")
    london = f.location(session, code="LON_VT", currency="GBP")
    paris = f.location(session, lat=48.86, lon=2.35, code="PAR_VT", currency="EUR", timezone="Europe/Paris",
                       country="FR")
    return compact, london, paris


def fields(**overrides):
    values = dict(vin=VIN, license_plate="AB21 CDE", make="Ford", model="Focus", year=2023,
                  vehicle_type="compact_vt", branch="LON_VT", daily_rate="42.50", odometer_km=12000, fuel_level=90,
                  image_urls=["https://img.example/focus.jpg"])
    values.update(overrides)
    return values


def audit_entries(session, action: str, entity_id) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                         AuditEntry.entity_id == str(entity_id))))


def events(session, event_type: str, vehicle_id: int) -> list[DomainEvent]:
    return list(session.scalars(select(DomainEvent).where(DomainEvent.event_type == event_type,
                                                          DomainEvent.aggregate_id == str(vehicle_id))))


# --- adding ------------------------------------------------------------------------------------------------------

def test_a_vehicle_is_added_cleaned_audited_and_evented(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields(vin=" 1m8gdm9axkp042788 ", license_plate="ab21cde",
                                                        make="  Ford ", branch="lon_vt"))
    assert (car.vin, car.plate, car.make, car.status) == (VIN, "AB21 CDE", "Ford", VehicleStatus.AVAILABLE)
    assert car.daily_rate == Decimal("42.50") and isinstance(car.daily_rate, Decimal)
    assert (car.currency, car.branch_code, car.vehicle_type) == ("GBP", "LON_VT", "compact_vt")
    assert car.image_urls == ("https://img.example/focus.jpg",)
    [entry] = audit_entries(session, "vehicle.created", car.id)
    assert entry.actor_label == fleet.label and entry.changes["license_plate"]["after"] == "AB21 CDE"
    assert entry.changes["daily_rate"]["after"] == "42.50"
    [event] = events(session, "vehicle.created", car.id)
    assert event.payload == {"vehicle_id": car.id, "license_plate": "AB21 CDE", "vehicle_type": "compact_vt",
                             "branch": "LON_VT"}


def test_optional_fields_take_their_defaults(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields(odometer_km=None, fuel_level="", image_urls=None))
    assert (car.odometer_km, car.fuel_level, car.image_urls) == (0, 100, ())


def test_the_currency_follows_the_branch(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields(branch="PAR_VT"))
    assert car.currency == "EUR" and car.timezone == "Europe/Paris"


BAD_FIELDS = [
    ("vin", "1M8GDM9A1KP042788", ["9th character (the check digit) is 1", "must be X"]),
    ("vin", "1M8GDM9AXKP0427", ["A VIN has 17 characters", "has 15"]),
    ("vin", "1M8GDM9AXKP04278O", ["never use I, O or Q"]),
    ("vin", "", ["Enter the VIN."]),
    ("license_plate", "AB21 C$E", ["may hold only letters and digits"]),
    ("license_plate", "A", ["has 1 letters and digits; a plate has 2 to 10"]),
    ("license_plate", "ABCDEFGHIJK1", ["has 12 letters and digits"]),
    ("make", "", ["Enter the make."]),
    ("make", "F" * 41, ["41 characters long; shorten it to at most 40"]),
    ("model", "Focus\x07", ["invisible control characters"]),
    ("year", 1989, ["The year 1989 is outside 1990–"]),
    ("year", NEXT_YEAR + 1, [f"The year {NEXT_YEAR + 1} is outside 1990–{NEXT_YEAR}"]),
    ("year", "twenty", ["whole number written with digits only"]),
    ("vehicle_type", "hovercraft", ["There is no vehicle type 'hovercraft'", "compact_vt"]),
    ("branch", "NOWHERE", ["There is no branch 'NOWHERE'", "Branches page"]),
    ("daily_rate", "0", ["more than 0"]),
    ("daily_rate", "-5", ["more than 0"]),
    ("daily_rate", "12.345", ["more than 2 decimal places"]),
    ("daily_rate", "£40", ["is not an amount", "e.g. 45.50"]),
    ("daily_rate", "1,250.00", ["no currency sign or thousands separator"]),
    ("daily_rate", 42.5, ["not a float"]),
    ("odometer_km", -1, ["between 0 and 2,000,000 km, not -1"]),
    ("odometer_km", "12.5", ["whole number"]),
    ("fuel_level", 101, ["between 0 and 100, not 101"]),
    ("image_urls", ["ftp://img.example/a.jpg"], ["must start with http:// or https://"]),
    ("image_urls", "javascript:alert(1)", ["not a web address"]),
    ("image_urls", [f"https://img.example/{n}.jpg" for n in range(11)], ["There are 11 image URLs; keep the best 10"]),
]


@pytest.mark.parametrize(("field", "value", "fragments"), BAD_FIELDS, ids=[f"{b[0]}-{i}" for i, b in
                                                                            enumerate(BAD_FIELDS)])
def test_each_bad_field_is_named_with_what_to_fix(session, fleet, world, field, value, fragments):
    with pytest.raises(VehicleInputError) as caught:
        vehicles.add_vehicle(session, fleet, **fields(**{field: value}))
    assert set(caught.value.problems) == {field}
    for fragment in fragments:
        assert fragment in caught.value.problems[field]


def test_every_problem_is_reported_at_once_and_nothing_is_written(session, fleet, world):
    before = session.scalar(select(func.count()).select_from(Vehicle))
    with pytest.raises(VehicleInputError) as caught:
        vehicles.add_vehicle(session, fleet, **fields(vin="1M8GDM9A1KP042788", license_plate="!!", year=1985,
                                                      vehicle_type="boat", branch="XX", daily_rate="0",
                                                      odometer_km=-3, fuel_level=120, image_urls="file:///etc"))
    assert set(caught.value.problems) == {"vin", "license_plate", "year", "vehicle_type", "branch", "daily_rate",
                                          "odometer_km", "fuel_level", "image_urls"}
    assert session.scalar(select(func.count()).select_from(Vehicle)) == before


@pytest.mark.parametrize(("typed", "stored"), [
    ("ab21cde", "AB21 CDE"), ("AB21-CDE", "AB21 CDE"), ("a123 bcd", "A123 BCD"), ("abc 123d", "ABC 123D"),
    ("B-MW 1234", "BMW1234"), ("AB-123-CD", "AB123CD"), ("M-ÜA 12", "MÜA12"), ("12 XYZ 3", "12XYZ3"),
])
def test_plates_are_stored_in_one_canonical_form_and_foreign_plates_are_accepted(session, fleet, world, typed,
                                                                                  stored):
    assert canonical_plate(typed) == stored
    car = vehicles.add_vehicle(session, fleet, **fields(license_plate=typed))
    assert car.plate == stored


@pytest.mark.parametrize("typed", ["AB21 CDE", "ab21cde", " ab21-cde "])
def test_a_plate_is_unique_however_it_is_typed(session, fleet, world, typed):
    first = vehicles.add_vehicle(session, fleet, **fields())
    with pytest.raises(DuplicateVehicle) as caught:
        vehicles.add_vehicle(session, fleet, **fields(vin=VIN2, license_plate=typed))
    assert caught.value.problems.keys() == {"license_plate"}
    assert f"already belongs to vehicle AB21 CDE (Ford Focus, id {first.id})" in str(caught.value)


def test_a_vin_is_unique(session, fleet, world):
    first = vehicles.add_vehicle(session, fleet, **fields())
    with pytest.raises(DuplicateVehicle) as caught:
        vehicles.add_vehicle(session, fleet, **fields(license_plate="XY70 ZZZ"))
    assert caught.value.problems.keys() == {"vin"}
    assert f"The VIN {VIN} already belongs to vehicle AB21 CDE (Ford Focus, id {first.id})" in str(caught.value)


def test_a_plate_stored_in_another_spelling_is_still_found(session, fleet, world):
    compact, london, _ = world
    f.vehicle(session, compact, london, license_plate="zz-99 abc")  # written before the rules, by hand
    with pytest.raises(DuplicateVehicle, match="already belongs to vehicle zz-99 abc"):
        vehicles.add_vehicle(session, fleet, **fields(license_plate="ZZ99ABC"))


@pytest.mark.parametrize("role", [UserRole.DESK_AGENT, UserRole.PRICING_ANALYST])
def test_only_fleet_managers_and_admins_write(session, world, role):
    with pytest.raises(Forbidden, match="cannot add vehicles; it needs the fleet manager role"):
        vehicles.add_vehicle(session, staff(session, role), **fields())


def test_an_admin_may_add(session, admin, world):
    assert vehicles.add_vehicle(session, admin, **fields()).plate == "AB21 CDE"


# --- editing -----------------------------------------------------------------------------------------------------

def test_an_edit_is_audited_with_before_and_after(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    changed = vehicles.update_vehicle(session, fleet, car.id, daily_rate="45.00", license_plate="ab21 cdf",
                                      image_urls="https://img.example/a.jpg|https://img.example/b.jpg")
    assert (changed.daily_rate, changed.plate) == (Decimal("45.00"), "AB21 CDF")
    assert changed.image_urls == ("https://img.example/a.jpg", "https://img.example/b.jpg")
    [entry] = audit_entries(session, "vehicle.updated", car.id)
    assert entry.changes["daily_rate"] == {"before": "42.50", "after": "45.00"}
    assert entry.changes["license_plate"] == {"before": "AB21 CDE", "after": "AB21 CDF"}
    assert "make" not in entry.changes
    [event] = events(session, "vehicle.updated", car.id)
    assert event.payload["changed"] == ["daily_rate", "image_urls", "license_plate"]


def test_an_edit_that_changes_nothing_records_nothing(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    vehicles.update_vehicle(session, fleet, car.id, license_plate="ab21cde", make="Ford")
    assert audit_entries(session, "vehicle.updated", car.id) == []


def test_an_edit_checks_fields_and_duplicates(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    other = vehicles.add_vehicle(session, fleet, **fields(vin=VIN2, license_plate="XY70 ZZZ"))
    with pytest.raises(VehicleInputError) as caught:
        vehicles.update_vehicle(session, fleet, car.id, make="", year=1900)
    assert set(caught.value.problems) == {"make", "year"}
    with pytest.raises(DuplicateVehicle, match=f"already belongs to vehicle XY70 ZZZ .*id {other.id}"):
        vehicles.update_vehicle(session, fleet, car.id, license_plate="xy70zzz")
    with pytest.raises(InvalidInput, match="Vehicles have no field colour"):
        vehicles.update_vehicle(session, fleet, car.id, colour="red")


def test_moving_to_a_branch_in_another_currency_needs_a_rate_in_it(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    with pytest.raises(InvalidInput, match="Branch PAR_VT prices in EUR, the car in GBP; give its daily rate in EUR"):
        vehicles.update_vehicle(session, fleet, car.id, branch="PAR_VT")
    moved = vehicles.update_vehicle(session, fleet, car.id, branch="PAR_VT", daily_rate="49.00")
    assert (moved.branch_code, moved.currency, moved.daily_rate) == ("PAR_VT", "EUR", Decimal("49.00"))


# --- status ------------------------------------------------------------------------------------------------------

def test_a_status_change_is_audited_and_evented_with_its_reason(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    moved = vehicles.change_status(session, fleet, car.id, "maintenance", "  windscreen   chipped ")
    assert (moved.status, moved.status_reason) == (VehicleStatus.MAINTENANCE, "windscreen chipped")
    [entry] = audit_entries(session, "vehicle.status_changed", car.id)
    assert entry.changes["status"] == {"before": "available", "after": "maintenance"}
    assert entry.changes["status_reason"] == {"before": None, "after": "windscreen chipped"}
    [event] = events(session, "vehicle.status_changed", car.id)
    assert event.payload == {"vehicle_id": car.id, "license_plate": "AB21 CDE", "from": "available",
                             "to": "maintenance", "reason": "windscreen chipped"}
    back = vehicles.change_status(session, fleet, car.id, VehicleStatus.AVAILABLE, "windscreen replaced")
    assert back.status == VehicleStatus.AVAILABLE


def test_a_status_change_needs_a_reason(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    with pytest.raises(InvalidInput, match="Give a reason for the status change"):
        vehicles.change_status(session, fleet, car.id, "maintenance", "   ")


@pytest.mark.parametrize(("target", "message"), [
    ("rented", "becomes rented by checking the car out to a booking, not by hand"),
    ("in_transit", "becomes intransit by starting a transfer, not by hand"),
    ("available", "is already available"),
    ("flying", "There is no vehicle status 'flying'"),
])
def test_moves_that_are_not_made_by_hand_are_refused(session, fleet, world, target, message):
    car = vehicles.add_vehicle(session, fleet, **fields())
    with pytest.raises((InvalidInput, Conflict), match=message):
        vehicles.change_status(session, fleet, car.id, target, "because")


def test_a_rented_car_changes_status_at_check_in_not_by_hand(session, fleet, world):
    compact, _, _ = world
    car = f.vehicle(session, compact, None, status=VehicleStatus.RENTED)
    with pytest.raises(Conflict, match="is rented; its status changes when it is checked in"):
        vehicles.change_status(session, fleet, car.id, "maintenance", "noise")


def test_maintenance_ends_by_hand_only_when_no_block_is_in_progress(session, fleet, world):
    compact, london, _ = world
    car = f.vehicle(session, compact, london, status=VehicleStatus.MAINTENANCE)
    block = f.maintenance(session, car, NOW - timedelta(hours=1), NOW + timedelta(hours=5), status="in_progress")
    with pytest.raises(Conflict, match=f"in maintenance block #{block.id}; complete or cancel that block"):
        vehicles.change_status(session, fleet, car.id, "available", "done")


def test_retiring_is_refused_while_bookings_are_to_come_and_lists_them(session, fleet, world):
    compact, london, _ = world
    car = f.vehicle(session, compact, london, license_plate="RT21 AAA")
    driver = f.customer(session)
    start = (NOW + timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
    first = f.booking(session, car, driver, start, start + timedelta(days=2))
    second = f.booking(session, car, driver, start + timedelta(days=5), start + timedelta(days=6),
                       status="pending")
    f.booking(session, car, driver, start - timedelta(days=30), start - timedelta(days=28), status="completed")
    with pytest.raises(Conflict) as caught:
        vehicles.retire_vehicle(session, fleet, car.id, "sold")
    message = str(caught.value)
    assert message.startswith("Vehicle RT21 AAA still has 2 bookings to come: ")
    assert f"{first.reference} (" in message and ", confirmed) and " in message
    assert f"{second.reference} (" in message and ", pending)" in message
    assert message.endswith("move them to another car first, then retire it.")
    session.refresh(car)
    assert car.status == VehicleStatus.AVAILABLE


def test_retiring_cancels_open_blocks_and_only_admins_bring_a_car_back(session, fleet, admin, world):
    compact, london, _ = world
    car = f.vehicle(session, compact, london)
    block = f.maintenance(session, car, NOW + timedelta(days=3), NOW + timedelta(days=4))
    retired = vehicles.retire_vehicle(session, fleet, car.id, "written off")
    assert (retired.status, retired.status_reason) == (VehicleStatus.RETIRED, "written off")
    session.refresh(block)
    assert block.status == "cancelled"
    occupied = session.scalar(text("SELECT count(*) FROM vehicle_occupancy WHERE vehicle_id = :id"), {"id": car.id})
    assert occupied == 0
    [entry] = audit_entries(session, "vehicle.status_changed", car.id)
    assert entry.changes["_note"] == f"open maintenance blocks cancelled: #{block.id}"
    with pytest.raises(Forbidden, match="cannot bring retired vehicles back into service"):
        vehicles.change_status(session, fleet, car.id, "available", "bought back")
    assert vehicles.change_status(session, admin, car.id, "available", "bought back").status == "available"


def test_retired_cars_are_hidden_from_the_list_unless_asked_for(session, fleet, world):
    compact, london, _ = world
    live = f.vehicle(session, compact, london, make="Skoda", model="Octavia")
    gone = f.vehicle(session, compact, london, make="Skoda", model="Octavia", status=VehicleStatus.RETIRED)
    listed = set(vehicles.list_vehicles(session, search="octavia")["id"])
    assert live.id in listed and gone.id not in listed
    assert gone.id in set(vehicles.list_vehicles(session, search="octavia", include_retired=True)["id"])


def test_search_by_plate_ignores_spacing_and_the_detail_is_found_by_any_spelling(session, fleet, world):
    car = vehicles.add_vehicle(session, fleet, **fields())
    assert list(vehicles.list_vehicles(session, search="b21c")["id"]) == [car.id]
    assert list(vehicles.list_vehicles(session, search="042788")["id"]) == [car.id]
    assert list(vehicles.list_vehicles(session, search="%")["id"]) == []
    assert vehicles.find_vehicle(session, "ab21-cde").id == car.id


# --- the detail view's data --------------------------------------------------------------------------------------

def test_the_timeline_holds_bookings_maintenance_and_transfers_of_the_window(session, world):
    compact, london, paris = world
    car = f.vehicle(session, compact, london)
    driver = f.customer(session)
    start = NOW + timedelta(days=2)
    booking = f.booking(session, car, driver, start, start + timedelta(days=1))
    f.booking(session, car, driver, start + timedelta(days=60), start + timedelta(days=61))  # outside
    f.booking(session, car, driver, start + timedelta(days=3), start + timedelta(days=4), status="cancelled")
    block = f.maintenance(session, car, start + timedelta(days=5), start + timedelta(days=6))
    session.execute(text("""
        INSERT INTO transfers (vehicle_id, from_location_id, to_location_id, depart_at, arrive_at, status)
        VALUES (:v, :a, :b, :d, :e, 'planned')
    """), {"v": car.id, "a": london.id, "b": paris.id, "d": start + timedelta(days=8),
           "e": start + timedelta(days=8, hours=9)})
    items = vehicles.vehicle_timeline(session, car.id, NOW, NOW + timedelta(weeks=4))
    assert list(items["lane"]) == ["Bookings", "Maintenance", "Transfers"]
    assert list(items["ref"])[:2] == [booking.reference, f"#{block.id}"]
    assert items.iloc[2]["detail"] == "LON_VT → PAR_VT"


def test_telematics_history_is_thinned_evenly_and_keeps_the_last_reading(session, world):
    compact, london, _ = world
    car = f.vehicle(session, compact, london)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    session.execute(text("SELECT fd_ensure_telematics_partition(:m)"), {"m": t0.date()})
    session.execute(text("""
        INSERT INTO telematics_readings (vehicle_id, recorded_at, position, fuel_level, odometer_km)
        SELECT :v, :t0 + make_interval(mins => n * 10), ST_GeogFromText('POINT(-0.12 51.5)'), 80, 1000 + n
        FROM generate_series(0, 999) AS n
    """), {"v": car.id, "t0": t0})
    every = vehicles.telematics_history(session, car.id, t0, t0 + timedelta(days=30))
    assert len(every) == 1000
    thin = vehicles.telematics_history(session, car.id, t0, t0 + timedelta(days=30), max_points=100)
    assert 100 <= len(thin) <= 101 and thin["odometer_km"].iloc[-1] == 1999
    assert thin["recorded_at"].is_monotonic_increasing


def test_periods_read_like_people_write_them():
    zone = vehicles.ZoneInfo("Europe/London")
    day = datetime(2026, 5, 3, 9, tzinfo=UTC)
    assert vehicles.describe_period(day, day + timedelta(days=2), zone) == "3–5 May"
    assert vehicles.describe_period(day, day + timedelta(hours=7), zone) == "3 May 10:00–17:00"
    assert vehicles.describe_period(day - timedelta(days=3), day, zone) == "30 Apr–3 May"
    assert vehicles.describe_period(datetime(2026, 12, 30, 12, tzinfo=UTC), datetime(2027, 1, 2, 12, tzinfo=UTC),
                                    zone) == "30 Dec 2026–2 Jan 2027"


# --- CSV import ----------------------------------------------------------------------------------------------------

HEADER = "vin,license_plate,make,model,year,vehicle_type,branch,daily_rate,odometer_km,fuel_level,image_urls"


def csv_of(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


MIXED = csv_of(
    f"{good_vin(1)},IM01 AAA,Ford,Fiesta,2022,compact_vt,LON_VT,39.00,5000,80,https://img.example/1.jpg",   # 2 good
    f"{good_vin(2)[:8]}0{good_vin(2)[9:]},IM02 AAA,Ford,Fiesta,2022,compact_vt,LON_VT,39.00,,,",            # 3 VIN
    f"{good_vin(3)},im01aaa,Ford,Fiesta,2022,compact_vt,LON_VT,39.00,,,",                                   # 4 plate
    f"{good_vin(4)},IM04 AAA,Ford,Fiesta,2022,compact_vt,NOWHERE,39.00,,,",                                 # 5 branch
    f"{good_vin(5)},IM05 AAA,Ford,Fiesta,1975,compact_vt,LON_VT,39.00,,,",                                  # 6 year
    f"{good_vin(6)},IM06 AAA,Ford,Fiesta,2022,compact_vt,LON_VT",                                           # 7 short
    "",                                                                                                       # 8 blank
    f'{good_vin(7)},IM07 AAA,"Mercedes-Benz","C 200, Estate",2024,compact_vt,par_vt,55.10,0,100,',         # 9 good
)


def test_an_import_with_bad_rows_imports_nothing_and_reports_every_bad_row(session, fleet, world):
    before = session.scalar(select(func.count()).select_from(Vehicle))
    report = vehicle_import.import_vehicles(session, fleet, MIXED)
    lines = [str(p) for p in report.problems]
    assert [p.line for p in report.problems] == [3, 4, 5, 6, 7]
    assert lines[0].startswith("line 3: vin: The VIN ") and "check digit) is 0, but" in lines[0]
    assert lines[1] == "line 4: license_plate: The number plate IM01 AAA is also on line 2; list each vehicle once."
    assert lines[2].startswith("line 5: branch: There is no branch 'NOWHERE'")
    assert lines[3].startswith("line 6: year: The year 1975 is outside 1990–")
    assert lines[4] == ("line 7: row: has 7 values but the header names 11 columns; look for a stray or missing "
                        "comma")
    assert (report.rows, report.bad_rows, report.imported) == (7, 5, 0)
    assert report.summary() == ("imported nothing: 5 of 7 rows are bad; fix them and import the file again, or "
                                "choose to import only the good rows")
    assert session.scalar(select(func.count()).select_from(Vehicle)) == before
    assert session.scalar(select(func.count()).where(AuditEntry.action == "vehicles.imported")) == 0


def test_an_import_of_good_rows_only_takes_them_and_audits_the_counts(session, fleet, world):
    report = vehicle_import.import_vehicles(session, fleet, MIXED, good_rows_only=True, source="fleet.csv")
    assert (report.imported, report.bad_rows) == (2, 5)
    assert report.summary().startswith("imported 2 of 7 vehicles; the 5 bad rows were left out")
    imported = session.execute(select(Vehicle.license_plate, Vehicle.make, Vehicle.model, Vehicle.currency,
                                      Vehicle.daily_rate, Vehicle.odometer_km, Vehicle.fuel_level, Vehicle.image_urls,
                                      Vehicle.status).where(Vehicle.id.in_(report.vehicle_ids))
                               .order_by(Vehicle.license_plate)).all()
    assert [tuple(r) for r in imported] == [
        ("IM01 AAA", "Ford", "Fiesta", "GBP", Decimal("39.00"), 5000, 80, ["https://img.example/1.jpg"],
         VehicleStatus.AVAILABLE),
        ("IM07 AAA", "Mercedes-Benz", "C 200, Estate", "EUR", Decimal("55.10"), 0, 100, [], VehicleStatus.AVAILABLE),
    ]
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "vehicles.imported"))
    after = {k: v["after"] for k, v in entry.changes.items()}
    assert after == {"source": "fleet.csv", "rows": 7, "imported": 2, "bad_rows": 5, "good_rows_only": True,
                     "first_vehicle_id": min(report.vehicle_ids), "last_vehicle_id": max(report.vehicle_ids)}
    created = session.scalars(select(DomainEvent).where(DomainEvent.event_type == "vehicle.created",
                                                        DomainEvent.aggregate_id.in_([str(i) for i in
                                                                                      report.vehicle_ids]))).all()
    assert {e.payload["license_plate"] for e in created} == {"IM01 AAA", "IM07 AAA"}


def test_a_good_file_is_imported_whole(session, fleet, world):
    report = vehicle_import.import_vehicles(session, fleet, csv_of(
        f"{good_vin(11)},GD01 AAA,Kia,Picanto,2025,compact_vt,LON_VT,30,,,",
        f"{good_vin(12)},GD02 AAA,Kia,Picanto,2025,COMPACT_VT,lon_vt,30.5,,,"))
    assert (report.imported, report.problems) == (2, [])
    assert report.summary() == "imported all 2 vehicles"


def test_duplicates_of_vehicles_already_in_the_fleet_are_bad_rows(session, fleet, world):
    existing = vehicles.add_vehicle(session, fleet, **fields())
    report = vehicle_import.import_vehicles(session, fleet, csv_of(
        f"{VIN},NEW1 AAA,Ford,Focus,2023,compact_vt,LON_VT,42.50,,,",
        f"{good_vin(21)},ab21-cde,Ford,Focus,2023,compact_vt,LON_VT,42.50,,,"), good_rows_only=True)
    owner = f"vehicle AB21 CDE (Ford Focus, id {existing.id})"
    assert [str(p) for p in report.problems] == [
        f"line 2: vin: The VIN {VIN} already belongs to {owner}.",
        f"line 3: license_plate: The number plate AB21 CDE already belongs to {owner}.",
    ]
    assert report.imported == 0


def test_columns_may_come_in_any_order_and_the_optional_ones_may_be_left_out(session, fleet, world):
    report = vehicle_import.import_vehicles(session, fleet, csv_of(
        f"LON_VT,compact_vt,{good_vin(31)},OR01 AAA,Seat,Ibiza,2021,33.00",
        header="Branch, Vehicle_Type ,VIN,license_plate,make,model,year,daily_rate"))
    assert report.imported == 1
    car = session.get(Vehicle, report.vehicle_ids[0])
    assert (car.odometer_km, car.fuel_level, car.image_urls) == (0, 100, [])


@pytest.mark.parametrize(("content", "message"), [
    (csv_of("x", header="vin,license_plate,make,model,vehicle_type,daily_rate"),
     "The header row lacks the columns year, branch. The columns are vin, license_plate, make, model, year, "
     "vehicle_type, branch, daily_rate and optionally odometer_km, fuel_level, image_urls."),
    (csv_of("x", header=HEADER + ",licence_plate"), "has the unknown column 'licence_plate'"),
    (csv_of("x", header=HEADER + ",vin"), "names vin twice"),
    (csv_of("x", header=HEADER + ","), "a column without a name (a comma too many at the end?)"),
    (csv_of("x", header=HEADER.replace(",", ";")), "separates its columns with ';'; save it as comma-separated"),
    (b"", "The file is empty; it needs a header row"),
    (csv_of(header=HEADER), "The file has a header but no vehicles below it."),
    ("vin,license_plate\nÄ".encode("latin-1"), "The file is not UTF-8 text"),
])
def test_a_file_that_cannot_be_read_is_refused_with_one_clear_message(session, fleet, world, content, message):
    with pytest.raises(InvalidInput) as caught:
        vehicle_import.import_vehicles(session, fleet, content)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_size_limits_are_clear(session, fleet, world, monkeypatch):
    monkeypatch.setattr(vehicle_import, "MAX_BYTES", 100)
    with pytest.raises(InvalidInput, match="import at most 0 MB at a time — split it into smaller files"):
        vehicle_import.import_vehicles(session, fleet, b"x" * 101)
    monkeypatch.setattr(vehicle_import, "MAX_BYTES", 20 * 1024 * 1024)
    monkeypatch.setattr(vehicle_import, "MAX_ROWS", 2)
    rows = [f"{good_vin(40 + n)},SZ0{n} AAA,Kia,Rio,2024,compact_vt,LON_VT,30,,," for n in range(3)]
    with pytest.raises(InvalidInput, match="The file has more than 2 vehicles; import at most 2 at a time"):
        vehicle_import.import_vehicles(session, fleet, csv_of(*rows))


def test_a_desk_agent_cannot_import(session, world):
    with pytest.raises(Forbidden, match="cannot import vehicles"):
        vehicle_import.import_vehicles(session, staff(session, UserRole.DESK_AGENT), MIXED)


def test_ten_thousand_rows_go_in_with_one_statement_and_an_event_each(session, fleet, world):
    rows = [f"{good_vin(100_000 + n)},BULK{n:05d},Toyota,Yaris,2024,compact_vt,LON_VT,35.00,{n},90,"
            for n in range(10_000)]
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("WITH INPUT"):
            statements.append(statement)

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        report = vehicle_import.import_vehicles(session, fleet, csv_of(*rows))
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert (report.imported, report.problems) == (10_000, [])
    assert len(statements) == 1
    ids = [str(i) for i in report.vehicle_ids]
    assert session.scalar(select(func.count()).where(DomainEvent.event_type == "vehicle.created",
                                                     DomainEvent.aggregate_id.in_(ids))) == 10_000
    assert session.scalar(select(func.count()).where(AuditEntry.action == "vehicles.imported")) == 1


def test_retiring_from_the_workshop_cancels_the_block_in_progress(session, fleet, world):
    compact, london, _ = world
    car = f.vehicle(session, compact, london)
    f.maintenance(session, car, NOW + timedelta(days=1), NOW + timedelta(days=2), status="in_progress")
    vehicles.retire_vehicle(session, fleet, car.id, "sold")
    assert session.scalars(select(MaintenanceBlock.status).where(MaintenanceBlock.vehicle_id == car.id)).all() \
        == ["cancelled"]


def test_the_database_guards_plates_and_vins_when_two_people_race(session, fleet, world, monkeypatch):
    """Even past the check (as when two people save at once), the unique constraints hold and say so clearly."""
    first = vehicles.add_vehicle(session, fleet, **fields())
    second = vehicles.add_vehicle(session, fleet, **fields(vin=VIN2, license_plate="XY70 ZZZ"))
    monkeypatch.setattr(vehicles, "refuse_duplicates", lambda *args, **kwargs: None)
    with pytest.raises(DuplicateVehicle, match="was just given to another vehicle"):
        vehicles.update_vehicle(session, fleet, second.id, license_plate="ab21-cde")
    with pytest.raises(DuplicateVehicle, match="was just given to another vehicle"):
        vehicles.add_vehicle(session, fleet, **fields(license_plate="NEW1 AAA"))
    monkeypatch.setattr(vehicle_import, "_duplicates", lambda *args: [])
    with pytest.raises(Conflict, match="added by someone else while it was being checked"):
        vehicle_import.import_vehicles(session, fleet, csv_of(
            f"{good_vin(50)},AB21CDE,Ford,Focus,2023,compact_vt,LON_VT,42.50,,,"))
    # the caller's transaction lives on
    assert vehicles.get_vehicle(session, second.id).plate == "XY70 ZZZ"
    assert vehicles.get_vehicle(session, first.id).plate == "AB21 CDE"
