"""The demo company's standing data: branches at real places, a fleet of real models, and its customers."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from data import identifiers
from data.reference import OPENING_HOURS, car_models, people, places, vehicle_classes

# Satellite depots sit at the same place whatever the seed: the company's map does not change with its history.
_SATELLITE_SEED = 20_260_101
# Share of each vehicle class in a branch's fleet, by kind of branch (economy, compact, midsize, suv, van, premium).
FLEET_MIX = {
    "airport": (0.16, 0.22, 0.20, 0.20, 0.04, 0.18),
    "rail": (0.18, 0.26, 0.22, 0.14, 0.06, 0.14),
    "city": (0.22, 0.28, 0.18, 0.12, 0.14, 0.06),
}
# Rental fleets are young: weight of each age in years (0 = this year's models).
_AGE_WEIGHTS = (0.08, 0.20, 0.22, 0.20, 0.14, 0.08, 0.05, 0.03)
FIRST_MODEL_YEAR, LAST_MODEL_YEAR = 2019, 2026
# Ofcom's numbers reserved for drama: they ring nowhere.
_DRAMA_PHONES = {"London": "+44 20 7946 0{:03d}", "Bristol": "+44 117 496 0{:03d}",
                 "Birmingham": "+44 121 496 0{:03d}", "Reading": "+44 118 496 0{:03d}"}
_DRAMA_PHONE_ELSEWHERE = "+44 1632 960{:03d}"
_DRAMA_MOBILE = "+44 7700 900{:03d}"
_FOREIGN_LICENCES = ("IE", "FR", "DE", "ES", "IT", "NL", "PL", "US")


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (numpy-broadcasting)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(value, dtype=float)) for value in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def offset_point(lat, lon, bearing_rad, distance_km):
    """The point distance_km from (lat, lon) along bearing_rad (small distances: flat-earth is exact enough)."""
    lat = np.asarray(lat, dtype=float)
    dlat = distance_km * np.cos(bearing_rad) / 111.32
    dlon = distance_km * np.sin(bearing_rad) / (111.32 * np.cos(np.radians(lat)))
    return lat + dlat, np.asarray(lon, dtype=float) + dlon


def build_branches(count: int) -> pd.DataFrame:
    """Branches B001.. at the real places; beyond those (the list has 60), satellite depots 2-6 km from a real
    place, named after it ("Reading – Depot 2"): made-up sites, placed towards the middle of the region so that
    the depots of coastal towns fall inland."""
    real = places()
    rows = [vars(place) | {"parent": None} for place in real[:count]]
    if count > len(real):
        rng = np.random.default_rng(_SATELLITE_SEED)
        centre_lat = float(np.mean([place.lat for place in real]))
        centre_lon = float(np.mean([place.lon for place in real]))
        depots_in_area: dict[str, int] = {}
        for index in range(len(real), count):
            parent = real[(index - len(real)) % len(real)]
            depot_number = depots_in_area[parent.area] = depots_in_area.get(parent.area, 1) + 1
            # Head roughly towards the middle of the region, so that depots of coastal towns stay on land.
            inland = np.arctan2((centre_lon - parent.lon) * np.cos(np.radians(parent.lat)), centre_lat - parent.lat)
            far_from_centre = haversine_km(parent.lat, parent.lon, centre_lat, centre_lon) > 15
            bearing = inland + rng.uniform(-1.0, 1.0) if far_from_centre else rng.uniform(0, 2 * np.pi)
            lat, lon = offset_point(parent.lat, parent.lon, bearing, rng.uniform(2.0, 6.0))
            # An airport's depot is an off-airport lot with a shuttle; other depots keep town-centre hours.
            kind, hours = (parent.kind, parent.hours) if parent.kind == "airport" else ("city", "city")
            rows.append(vars(parent) | {
                "kind": kind, "hours": hours,
                "name": f"{parent.area} – Depot {depot_number}",
                "address": f"{parent.area} depot {depot_number}, {parent.city}",
                "lat": round(float(lat), 4), "lon": round(float(lon), 4),
                "demand": round(parent.demand * 0.4, 3), "parent": parent.name,
            })
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", np.arange(1, count + 1))
    frame.insert(1, "code", [f"B{number:03d}" for number in frame["id"]])
    frame["operating_hours"] = [json.dumps(OPENING_HOURS[hours]) for hours in frame["hours"]]
    frame["contact_phone"] = [
        _DRAMA_PHONES.get(city, _DRAMA_PHONE_ELSEWHERE).format(index % 1000)
        for index, city in enumerate(frame["city"])
    ]
    return frame


def vehicle_types_frame() -> pd.DataFrame:
    frame = pd.DataFrame([vars(vclass) for vclass in vehicle_classes()])
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    return frame


def _largest_remainder(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Integers proportional to weights summing to total, each at least minimum."""
    counts = np.full(len(weights), minimum, dtype=np.int64)
    rest = total - counts.sum()
    exact = weights / weights.sum() * rest
    counts += np.floor(exact).astype(np.int64)
    short = total - counts.sum()
    order = np.lexsort((np.arange(len(weights)), -(exact - np.floor(exact))))
    counts[order[:short]] += 1
    return counts


def build_fleet(rng: np.random.Generator, branches: pd.DataFrame, count: int, now: datetime) -> pd.DataFrame:
    """Vehicles spread over the branches by their demand, of a mix of classes that suits each kind of branch."""
    per_branch = _largest_remainder(count, branches["demand"].to_numpy(), minimum=1)
    home = np.repeat(np.arange(len(branches)), per_branch)
    class_codes = [vclass.code for vclass in vehicle_classes()]
    type_index = np.concatenate([
        np.repeat(np.arange(len(class_codes)), _largest_remainder(int(n), np.array(FLEET_MIX[kind])))
        for n, kind in zip(per_branch, branches["kind"], strict=True)
    ])

    newest = min(LAST_MODEL_YEAR, now.year)
    years_available = np.arange(newest, max(FIRST_MODEL_YEAR, newest - len(_AGE_WEIGHTS) + 1) - 1, -1)
    age_weights = np.array(_AGE_WEIGHTS[: len(years_available)])
    years = years_available[rng.choice(len(years_available), size=count, p=age_weights / age_weights.sum())]

    models = car_models()
    model_index = np.empty(count, dtype=np.int64)
    for t, code in enumerate(class_codes):
        for year in np.unique(years):
            chosen = np.flatnonzero((type_index == t) & (years == year))
            if not len(chosen):
                continue
            options = [i for i, m in enumerate(models) if m.type_code == code and m.first_year <= year <= m.last_year]
            shares = np.array([models[i].share for i in options])
            model_index[chosen] = np.array(options)[rng.choice(len(options), size=len(chosen), p=shares / shares.sum())]

    registered = [_registration_date(rng, int(year), now) for year in years]
    base_rates = np.array([vclass.base_daily_rate for vclass in vehicle_classes()], dtype=object)
    frame = pd.DataFrame({
        "id": np.arange(1, count + 1),
        "home": home,
        "type_index": type_index,
        "vehicle_type_id": type_index + 1,
        "make": [models[i].make for i in model_index],
        "model": [models[i].model for i in model_index],
        "year": years,
        "registered": registered,
        "daily_rate": [base_rates[t] + models[i].rate_adjust for t, i in zip(type_index, model_index, strict=True)],
    })
    frame["vin"] = identifiers.random_vins(rng, [models[i].wmi for i in model_index], years.tolist())
    frame["license_plate"] = identifiers.random_plates(rng, registered)
    return frame


def _registration_date(rng: np.random.Generator, model_year: int, now: datetime) -> date:
    """A day in the plate year of the model (March to the next February), at least a week before now."""
    latest = now.date() - timedelta(days=7)
    start = date(model_year, 3, 1)
    if start > latest:
        start = date(model_year - 1, 9, 1)
    end = min(date(model_year + 1, 2, 28), latest)
    return start + timedelta(days=int(rng.integers(0, (end - start).days + 1)))


def build_customers(
    rng: np.random.Generator, count: int, branches: pd.DataFrame, now: datetime, since: datetime
) -> pd.DataFrame:
    """Customers with unique e-mail addresses at example.com, drama phone numbers and mostly British licences."""
    names = people()
    first = np.array(names["first_names"])[rng.integers(0, len(names["first_names"]), size=count)]
    last = np.array(names["last_names"])[rng.integers(0, len(names["last_names"]), size=count)]
    frame = pd.DataFrame({"id": np.arange(1, count + 1), "first_name": first, "last_name": last})
    local = (frame["first_name"] + "." + frame["last_name"]).str.lower().str.replace("'", "", regex=False)
    occurrence = local.groupby(local).cumcount()
    frame["email"] = np.where(occurrence == 0, local, local + (occurrence + 1).astype(str)) + "@example.com"
    frame["phone"] = [_DRAMA_MOBILE.format(n) for n in rng.integers(0, 1000, size=count)]

    today = now.date()
    ages = np.clip(np.round(rng.gamma(2.2, 9.0, size=count) + 21), 21, 79).astype(int)  # mean 41, 1 in 11 under 25
    frame["date_of_birth"] = [
        today - timedelta(days=int(age * 365.25) + int(day))
        for age, day in zip(ages, rng.integers(1, 365, size=count), strict=True)
    ]
    towns = branches["city"].unique()
    frame["address"] = [
        f"{number} {street}, {town}"
        for number, street, town in zip(
            rng.integers(1, 180, size=count),
            np.array(names["streets"])[rng.integers(0, len(names["streets"]), size=count)],
            towns[rng.integers(0, len(towns), size=count)],
            strict=True,
        )
    ]
    frame["licence_country"] = np.where(
        rng.random(count) < 0.92, "GB", np.array(_FOREIGN_LICENCES)[rng.integers(0, len(_FOREIGN_LICENCES), count)]
    )
    expired = rng.random(count) < 0.03
    expiry_offset = np.where(expired, -rng.integers(1, 120, size=count), rng.integers(60, 3650, size=count))
    frame["licence_expiry"] = [today + timedelta(days=int(days)) for days in expiry_offset]
    frame["status"] = np.where(rng.random(count) < 0.01, "blocked", "active")
    frame["identity_status"] = np.where(rng.random(count) < 0.8, "verified", "unverified")
    frame["marketing_opt_in"] = rng.random(count) < 0.35
    # Every customer signed up before the simulated history starts, so before any of their bookings.
    signed_up = rng.integers(1, 1500 * 1440, size=count)
    frame["created_at"] = [since - timedelta(minutes=int(minutes)) for minutes in signed_up]
    return frame
