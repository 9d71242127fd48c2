"""The facts the demo company is built from: real places, vehicle classes, real makes and models, common names.

The files live in ``data/reference/``. Stations sit at the coordinates of the National Rail station list
(NaPTAN); airports at their terminal (or, for Bristol, the airfield's reference point); town centres at the
centre a gazetteer gives for the town. Each is within a few hundred metres of the place it names.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).with_name("reference")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CURRENCY = "GBP"
TIMEZONE = "Europe/London"

# The opening hours of each kind of branch, in the shape stored in locations.operating_hours (local time).
OPENING_HOURS: dict[str, dict[str, list[list[str]]]] = {
    "24h": {day: [["00:00", "24:00"]] for day in WEEKDAYS},
    "airport": {day: [["05:00", "23:59"]] for day in WEEKDAYS},
    "rail": {day: [["06:30", "22:00"]] for day in WEEKDAYS},
    "city": {**{day: [["08:00", "18:00"]] for day in WEEKDAYS[:5]}, "sat": [["09:00", "13:00"]], "sun": []},
}


@dataclass(frozen=True)
class Place:
    """A real place with a branch: an airport terminal, a railway station or a town centre."""

    name: str
    area: str
    kind: str
    hours: str
    address: str
    city: str
    lat: float
    lon: float
    demand: float


@dataclass(frozen=True)
class VehicleClass:
    code: str
    name: str
    rank: int
    seats: int
    transmission: str
    fuel: str
    base_daily_rate: Decimal
    deposit_amount: Decimal
    min_driver_age: int
    service_interval_km: int
    service_interval_days: int


@dataclass(frozen=True)
class CarModel:
    type_code: str
    make: str
    model: str
    wmi: str
    share: float
    rate_adjust: Decimal
    first_year: int
    last_year: int


def _rows(name: str) -> list[dict[str, str]]:
    with (REFERENCE_DIR / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def places() -> tuple[Place, ...]:
    """The real places, in the order their branches are numbered (B001 is Heathrow Terminal 2)."""
    return tuple(
        Place(
            name=row["name"], area=row["area"], kind=row["kind"], hours=row["hours"], address=row["address"],
            city=row["city"], lat=float(row["lat"]), lon=float(row["lon"]), demand=float(row["demand"]),
        )
        for row in _rows("branches.csv")
    )


@cache
def vehicle_classes() -> tuple[VehicleClass, ...]:
    """economy, compact, midsize, suv, van, premium: in rank order."""
    return tuple(
        VehicleClass(
            code=row["code"], name=row["name"], rank=int(row["rank"]), seats=int(row["seats"]),
            transmission=row["transmission"], fuel=row["fuel"], base_daily_rate=Decimal(row["base_daily_rate"]),
            deposit_amount=Decimal(row["deposit_amount"]), min_driver_age=int(row["min_driver_age"]),
            service_interval_km=int(row["service_interval_km"]),
            service_interval_days=int(row["service_interval_days"]),
        )
        for row in _rows("vehicle_types.csv")
    )


@cache
def car_models() -> tuple[CarModel, ...]:
    return tuple(
        CarModel(
            type_code=row["type"], make=row["make"], model=row["model"], wmi=row["wmi"], share=float(row["share"]),
            rate_adjust=Decimal(row["rate_adjust"]), first_year=int(row["first_year"]),
            last_year=int(row["last_year"]),
        )
        for row in _rows("models.csv")
    )


@cache
def people() -> dict[str, tuple[str, ...]]:
    """first_names, last_names and streets."""
    raw = json.loads((REFERENCE_DIR / "people.json").read_text(encoding="utf-8"))
    return {key: tuple(values) for key, values in raw.items()}
