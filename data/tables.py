"""The whole demo company as rows of our tables, ready to COPY: a pure function of the spec and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from data import company, demand, fleet_state, rentals
from data.identifiers import booking_references
from data.reference import CURRENCY, TIMEZONE, vehicle_classes
from services.crypto import LicenceCipher

RETIRED_SHARE = 0.01


@dataclass(frozen=True)
class DemoTables:
    """Frames whose columns are exactly those loaded into each table, in a loadable order."""

    tables: dict[str, pd.DataFrame]
    facts: dict[str, int] = field(default_factory=dict)


def build_tables(*, branches: int, vehicles: int, history_days: int, seed: int, now: datetime,
                 turnaround: int) -> DemoTables:
    """The demo company of this size, history and seed, as it stands at `now`: the rows of each table."""
    rng = np.random.default_rng(seed)
    now_minute = int(now.timestamp() // 60)
    calendar = demand.make_calendar(now.astimezone(ZoneInfo(TIMEZONE)).date(), history_days)
    history_start = int(calendar.local_epoch_minute[0])

    sites = company.build_branches(branches)
    fleet = company.build_fleet(rng, sites, vehicles, now)
    fleet = _service_life(rng, fleet, history_start, now_minute)
    customers = company.build_customers(rng, max(200, vehicles), sites, now, since=_at(history_start))

    n_types = len(vehicle_classes())
    # Each branch sees demand for the classes it keeps, in proportion to how many it keeps.
    stocked = np.bincount(fleet["home"] * n_types + fleet["type_index"], minlength=len(sites) * n_types)
    requests = demand.make_requests(rng, sites, stocked.reshape(len(sites), n_types), calendar, now_minute)
    outcomes = rentals.decide_outcomes(rng, requests, now_minute)
    served, one_way = rentals.assign_vehicles(
        requests, outcomes, vehicle_home=fleet["home"].to_numpy(), vehicle_type=fleet["type_index"].to_numpy(),
        joins_at=fleet["joins_at"].to_numpy(), retires_at=fleet["retires_at"].to_numpy(),
        n_types=n_types, n_branches=len(sites), turnaround=turnaround,
    )
    bookings = _served_bookings(requests, outcomes, served, one_way, turnaround, now_minute)
    rate_pence = np.array([int(rate * 100) for rate in fleet["daily_rate"]], dtype=np.int64)
    bookings = rentals.price_bookings(bookings, rate_pence)
    bookings = rentals.record_trips(rng, bookings, fleet["initial_odometer"].to_numpy())
    min_age = np.array([vclass.min_driver_age for vclass in vehicle_classes()])
    bookings["user_id"] = rentals.choose_customers(
        rng, bookings, customers, min_age, history_start=pd.Timestamp(calendar.first_day),
        horizon_end=pd.Timestamp(calendar.dates()[calendar.days + 14]), now=now_minute,
    )
    bookings["cancel_reason"] = rentals.cancel_reasons(rng, bookings["status"].to_numpy())
    interval_km = np.array([vclass.service_interval_km for vclass in vehicle_classes()])[fleet["type_index"]]
    state = fleet_state.settle_fleet(rng, fleet, bookings, sites, interval_km=interval_km, now=now_minute,
                                     history_start=history_start)

    opened = history_start - 400 * 1440
    tables = {
        "vehicle_types": _vehicle_type_rows(),
        "locations": _location_rows(sites, fleet, state, opened),
        "users": _user_rows(customers),
        "vehicles": _vehicle_rows(fleet, state),
        "bookings": _booking_rows(bookings, turnaround),
        "maintenance_blocks": _block_rows(state.blocks),
        "transfers": _transfer_rows(state.transfers),
        "turned_away": _turned_away_rows(requests, served, now_minute),
    }
    facts = {
        "requests": len(requests),
        "turned_away": int((served < 0).sum()),
        "in_progress": int((bookings["status"] == rentals.PICKED_UP).sum()),
        "upcoming": int(bookings["status"].isin([rentals.CONFIRMED, rentals.PENDING]).sum()),
    }
    return DemoTables(tables=tables, facts=facts)


def _at(minute: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=int(minute))


def _service_life(rng: np.random.Generator, fleet: pd.DataFrame, history_start: int, now: int) -> pd.DataFrame:
    """When each car joined the fleet (shortly after registration), a few retirements, the odometer at joining."""
    count = len(fleet)
    registered = np.array([(day - datetime(1970, 1, 1).date()).days * 1440 for day in fleet["registered"]])
    joins = np.minimum(registered + rng.integers(1, 21, size=count) * 1440 + rng.integers(0, 1440, size=count),
                       now - 1440)
    retires = np.full(count, rentals.NEVER)
    retiring = rng.random(count) < RETIRED_SHARE
    earliest = np.maximum(joins, history_start) + 1440
    retires[retiring] = earliest[retiring] + (rng.random(int(retiring.sum()))
                                              * np.maximum(now - 1440 - earliest[retiring], 0)).astype(np.int64)
    # Odometer when the history starts (or when a newer car joins): rental cars cover about 25,000 km a year.
    age_days = np.maximum(history_start - registered, 0) / 1440
    odometer = np.round(age_days * rng.uniform(55, 85, size=count) + rng.integers(10, 60, size=count))
    return fleet.assign(joins_at=joins, retires_at=retires, initial_odometer=odometer.astype(np.int64))


def _served_bookings(requests: demand.Requests, outcomes: rentals.Outcomes, served: np.ndarray,
                     one_way: np.ndarray, turnaround: int, now: int) -> pd.DataFrame:
    keep = served >= 0
    requests = requests.take(np.flatnonzero(keep))
    one_way = one_way[keep]
    dropoff = np.where(one_way, requests.dropoff, requests.round_dropoff)
    returned = requests.returned(dropoff)
    frame = pd.DataFrame({
        "vehicle": served[keep],
        "branch": requests.branch,
        "dropoff_branch": np.where(one_way, requests.dropoff_branch, requests.branch),
        "vtype": requests.vtype,
        "price_level": requests.price_level,
        "pickup": requests.pickup,
        "dropoff": dropoff,
        "returned": returned,
        "one_way_km": np.where(one_way, np.round(requests.one_way_km, 1), 0.0),
        "desk": requests.desk,
        "status": rentals.settle_returns(outcomes.status[keep], returned, now),
        "created": outcomes.created[keep],
        "cancelled_at": outcomes.cancelled_at[keep],
        "hold_expires_at": outcomes.hold_expires_at[keep],
    })
    frame["free_again"] = np.maximum(frame["dropoff"], frame["returned"]) + turnaround
    # Ids follow the order bookings were made, as they would in the live system.
    return frame.sort_values(["created", "pickup"], kind="stable").reset_index(drop=True)


# Text for COPY (FORMAT csv): an empty field is NULL; money is exact decimal text, never a float.

def timestamps(minutes: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """ISO text of UTC minutes ('2026-05-03T09:15:00+00'), '' where not present (NULL)."""
    minutes = np.asarray(minutes, dtype=np.int64)
    if not len(minutes):
        return np.array([], dtype=object)
    day, minute_of_day = np.divmod(minutes, 1440)
    first = int(day.min())
    dates = np.datetime_as_string(np.arange(first, int(day.max()) + 1).astype("datetime64[D]")).astype(object)
    clock = np.array([f"T{m // 60:02d}:{m % 60:02d}:00+00" for m in range(1440)], dtype=object)
    text = dates[day - first] + clock[minute_of_day]
    return text if present is None else np.where(present, text, "")


def money(pence) -> pd.Series:
    pence = pd.Series(np.asarray(pence, dtype=np.int64))
    return (pence // 100).astype(str) + "." + (pence % 100).astype(str).str.zfill(2)


def points(lat, lon) -> pd.Series:
    return "SRID=4326;POINT(" + pd.Series(lon).map("{:.6f}".format) + " " + pd.Series(lat).map("{:.6f}".format) + ")"


def _vehicle_type_rows() -> pd.DataFrame:
    frame = company.vehicle_types_frame()
    frame["base_daily_rate"] = frame["base_daily_rate"].map(str)
    frame["deposit_amount"] = frame["deposit_amount"].map(str)
    frame["currency"] = CURRENCY
    return frame


def _location_rows(sites: pd.DataFrame, fleet: pd.DataFrame, state: fleet_state.FleetState,
                   opened: int) -> pd.DataFrame:
    at_start = np.bincount(fleet["home"], minlength=len(sites))
    parked = state.vehicles["location"].to_numpy()
    now_there = np.bincount(parked[parked >= 0], minlength=len(sites))
    # Room for the most cars it has held at either end of the history, plus a quarter and a few spare bays.
    capacity = (np.ceil(np.maximum(at_start, now_there) * 1.25 / 5) * 5 + 5).astype(np.int64)
    return pd.DataFrame({
        "id": sites["id"], "code": sites["code"], "name": sites["name"], "kind": sites["kind"],
        "address": sites["address"], "city": sites["city"], "country": "GB",
        "geog": points(sites["lat"], sites["lon"]), "operating_hours": sites["operating_hours"],
        "contact_phone": sites["contact_phone"], "timezone": TIMEZONE, "parking_capacity": capacity,
        "currency": CURRENCY, "created_at": timestamps(np.full(len(sites), opened)),
    })


_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def demo_licence_number(customer_id: int, last_name: str, first_name: str, date_of_birth) -> str:
    """A UK-style 16-character licence number: surname, birth date, initial, and the id (so each is unique)."""
    surname = "".join(ch for ch in last_name.upper() if ch.isalpha())[:5].ljust(5, "9")
    n, tail = customer_id, ""
    for _ in range(4):
        n, r = divmod(n, 36)
        tail = _BASE36[r] + tail
    return f"{surname}{date_of_birth:%y%m%d}{(first_name[:1] or 'X').upper()}{tail}"


def _licence_columns(customers: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Encrypted licence numbers and their look-up hashes, as COPY text for bytea."""
    cipher = LicenceCipher.from_environment()
    encrypted, hashes = [], []
    for cid, last, first, born in zip(customers["id"], customers["last_name"], customers["first_name"],
                                      customers["date_of_birth"], strict=True):
        number = demo_licence_number(int(cid), last, first, born)
        encrypted.append("\\x" + cipher.encrypt(number).hex())
        hashes.append("\\x" + cipher.lookup_hash(number).hex())
    return encrypted, hashes


def _user_rows(customers: pd.DataFrame) -> pd.DataFrame:
    created = timestamps(np.array([int(at.timestamp() // 60) for at in customers["created_at"]]))
    encrypted, hashes = _licence_columns(customers)
    return pd.DataFrame({
        "id": customers["id"], "email": customers["email"], "first_name": customers["first_name"],
        "last_name": customers["last_name"], "date_of_birth": customers["date_of_birth"].map(str),
        "address": customers["address"], "status": customers["status"], "phone": customers["phone"],
        "role": "customer", "licence_country": customers["licence_country"],
        "licence_number_encrypted": encrypted, "licence_number_hash": hashes,
        "licence_expiry": customers["licence_expiry"].map(str), "identity_status": customers["identity_status"],
        "marketing_opt_in": np.where(customers["marketing_opt_in"], "t", "f"), "created_at": created,
        "updated_at": created,
    })


def _vehicle_rows(fleet: pd.DataFrame, state: fleet_state.FleetState) -> pd.DataFrame:
    location = state.vehicles["location"].to_numpy()
    serviced = state.vehicles["last_service_at"].to_numpy() >= 0
    return pd.DataFrame({
        "id": fleet["id"], "vin": fleet["vin"], "license_plate": fleet["license_plate"], "make": fleet["make"],
        "model": fleet["model"], "year": fleet["year"], "vehicle_type_id": fleet["vehicle_type_id"],
        "current_location_id": pd.Series(location + 1, dtype="Int64").where(location >= 0),
        "status": state.vehicles["status"], "daily_rate": fleet["daily_rate"].map(str), "currency": CURRENCY,
        "image_urls": "{}", "odometer_km": state.vehicles["odometer"], "fuel_level": state.vehicles["fuel"],
        "status_reason": state.vehicles["status_reason"],
        "last_position": points(state.vehicles["lat"], state.vehicles["lon"]),
        "last_seen_at": timestamps(state.vehicles["last_seen"].to_numpy()),
        "last_service_at": timestamps(state.vehicles["last_service_at"].to_numpy(), serviced),
        "last_service_km": pd.Series(state.vehicles["last_service_km"], dtype="Int64").where(serviced),
        "created_at": timestamps(fleet["joins_at"].to_numpy()),
        "updated_at": timestamps(state.vehicles["last_seen"].to_numpy()),
    })


def _turned_away_rows(requests: demand.Requests, served: np.ndarray, now: int) -> pd.DataFrame:
    """The walk-ins no car was free for, as the desk records them (requests booked online leave no trace)."""
    lost = np.flatnonzero((served < 0) & requests.desk & (requests.created < now))
    return pd.DataFrame({
        "id": np.arange(1, len(lost) + 1),
        "location_id": requests.branch[lost] + 1,
        "vehicle_type_id": requests.vtype[lost] + 1,
        "pickup_at": timestamps(requests.pickup[lost]),
        "dropoff_at": timestamps(requests.round_dropoff[lost]),
        "reason": "no_car",
        "recorded_at": timestamps(requests.created[lost]),
    })


def _booking_rows(bookings: pd.DataFrame, turnaround: int) -> pd.DataFrame:
    ids = np.arange(1, len(bookings) + 1)
    status = bookings["status"].to_numpy()
    completed = status == rentals.COMPLETED
    cancelled = status == rentals.CANCELLED
    refunded = cancelled & (bookings["pickup"].to_numpy() - bookings["cancelled_at"].to_numpy()
                            >= rentals.FREE_CANCELLATION_MINUTES)
    payment = np.where(status == rentals.PENDING, "unpaid", np.where(refunded, "refunded", "paid"))
    total, base, fee = money(bookings["total_pence"]), money(bookings["base_pence"]), money(bookings["one_way_fee_pence"])
    breakdown = (
        '{"days": ' + bookings["days"].astype(str)
        + ', "daily_rate": "' + money(bookings["rate_pence"])
        + '", "multiplier": "' + money(bookings["multiplier_pct"])
        + '", "base": "' + base + '", "one_way_fee": "' + fee + '", "total": "' + total + '"}'
    )
    changed = np.select(
        [completed, status == rentals.PICKED_UP, cancelled, status == rentals.NO_SHOW],
        [bookings["returned"].to_numpy(), bookings["pickup"].to_numpy(), bookings["cancelled_at"].to_numpy(),
         bookings["pickup"].to_numpy() + rentals.NO_SHOW_GRACE_MINUTES],
        default=bookings["created"].to_numpy(),
    )
    return pd.DataFrame({
        "id": ids,
        "reference": booking_references(ids),
        "user_id": bookings["user_id"],
        "vehicle_id": bookings["vehicle"] + 1,
        "vehicle_type_id": bookings["vtype"] + 1,
        "pickup_location_id": bookings["branch"] + 1,
        "dropoff_location_id": bookings["dropoff_branch"] + 1,
        "pickup_at": timestamps(bookings["pickup"].to_numpy()),
        "dropoff_at": timestamps(bookings["dropoff"].to_numpy()),
        "actual_return_at": timestamps(bookings["returned"].to_numpy(), completed),
        "turnaround_minutes": turnaround,
        "total_price": total,
        "currency": CURRENCY,
        "price_breakdown": breakdown,
        "status": rentals.STATUS_NAMES[status],
        "payment_status": payment,
        "channel": np.where(bookings["desk"], "desk", "api"),
        "hold_expires_at": timestamps(bookings["hold_expires_at"].to_numpy(), status == rentals.PENDING),
        "odometer_out_km": bookings["odometer_out"],
        "fuel_out": bookings["fuel_out"],
        "odometer_in_km": bookings["odometer_in"],
        "fuel_in": bookings["fuel_in"],
        "cancel_reason": bookings["cancel_reason"],
        "cancelled_at": timestamps(bookings["cancelled_at"].to_numpy(), cancelled),
        "created_at": timestamps(bookings["created"].to_numpy()),
        "updated_at": timestamps(changed),
    })


def _block_rows(blocks: pd.DataFrame) -> pd.DataFrame:
    start, end = timestamps(blocks["start"].to_numpy()), timestamps(blocks["end"].to_numpy())
    return pd.DataFrame({
        "id": np.arange(1, len(blocks) + 1),
        "vehicle_id": blocks["vehicle"].to_numpy() + 1,
        "period": np.char.add(np.char.add(np.char.add(np.char.add('["', start), '","'), end), '")'),
        "reason": blocks["reason"].to_numpy(),
        "status": blocks["status"].to_numpy(),
        "created_at": timestamps(blocks["created"].to_numpy()),
    })



def _transfer_rows(transfers: pd.DataFrame) -> pd.DataFrame:
    distance = transfers["distance_km"].to_numpy()
    cost_pence = np.round((25 + 0.55 * distance) * 100).astype(np.int64)  # a driver and fuel
    return pd.DataFrame({
        "id": np.arange(1, len(transfers) + 1),
        "vehicle_id": transfers["vehicle"].to_numpy() + 1,
        "from_location_id": transfers["from_branch"].to_numpy() + 1,
        "to_location_id": transfers["to_branch"].to_numpy() + 1,
        "depart_at": timestamps(transfers["depart"].to_numpy()),
        "arrive_at": timestamps(transfers["arrive"].to_numpy()),
        "status": "in_transit",
        "distance_km": [f"{km:.1f}" for km in distance],
        "cost": money(cost_pence),
        "currency": CURRENCY,
        "created_at": timestamps(transfers["created"].to_numpy()),
        "updated_at": timestamps(transfers["depart"].to_numpy()),
    })
