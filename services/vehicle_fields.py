"""The fields of a vehicle: each one cleaned and checked, with a message per field that says what to fix.

Used by the form (one vehicle) and the CSV import (thousands), so cleaning is pure Python against a `Catalogue` of
the vehicle types and branches loaded once.

Number plates are stored in one canonical form that depends only on their letters and digits (upper case, no
separators, except that British formats get their usual space: "AB21 CDE"), so the database's unique constraint on
`license_plate` also refuses "ab21cde" and "AB21-CDE" once "AB21 CDE" exists. Foreign plates are accepted: 2 to 10
letters or digits, written with spaces or hyphens if you like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.errors import InvalidInput
from services.vin import normalise_vin, vin_problem

FIELDS = ("vin", "license_plate", "make", "model", "year", "vehicle_type", "branch", "daily_rate", "odometer_km",
          "fuel_level", "image_urls")
REQUIRED = FIELDS[:8]
DEFAULTS: dict[str, Any] = {"odometer_km": 0, "fuel_level": 100, "image_urls": ()}
LABELS = {"vin": "VIN", "license_plate": "number plate", "make": "make", "model": "model", "year": "year",
          "vehicle_type": "vehicle type", "branch": "branch", "daily_rate": "daily rate", "odometer_km": "odometer",
          "fuel_level": "fuel level", "image_urls": "image URLs"}
TEXT_LIMITS = {"make": 40, "model": 60}
FIRST_YEAR = 1990
MAX_DAILY_RATE = Decimal("100000")
MAX_ODOMETER_KM = 2_000_000
MAX_IMAGES = 10
MAX_URL_CHARS = 2000
URL_SEPARATOR = "|"

_PLATE_CHARACTERS = re.compile(r"[^\W_]+(?:[ \-][^\W_]+)*")
_NOT_ALNUM = re.compile(r"[\W_]+")
# British formats keep their space: current (AB21 CDE), prefix (A123 BCD) and suffix (ABC 123D) plates.
_UK_PLATES = (re.compile(r"([A-Z]{2}[0-9]{2})([A-Z]{3})"), re.compile(r"([A-Z][0-9]{1,3})([A-Z]{3})"),
              re.compile(r"([A-Z]{3})([0-9]{1,3}[A-Z])"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class TypeRef:
    id: int
    code: str


@dataclass(frozen=True)
class BranchRef:
    id: int
    code: str
    currency: str


@dataclass(frozen=True)
class Catalogue:
    """The vehicle types (by code) and branches (by upper-case code) a vehicle may name."""

    types: dict[str, TypeRef]
    branches: dict[str, BranchRef]

    @classmethod
    def load(cls, session: Session) -> Catalogue:
        types = {code: TypeRef(id_, code) for id_, code in
                 session.execute(text("SELECT id, code FROM vehicle_types ORDER BY rank, code"))}
        branches = {code.upper(): BranchRef(id_, code, currency) for id_, code, currency in
                    session.execute(text("SELECT id, code, currency FROM locations ORDER BY code"))}
        return cls(types, branches)


class VehicleInputError(InvalidInput):
    """One or more fields are invalid; `problems` maps each field to what to fix."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__(" ".join(self.problems.values()))


class _Problem(Exception):
    pass


def plate_key(plate: str) -> str:
    """The letters and digits of a plate, upper case: two plates are the same plate when their keys are equal."""
    return _NOT_ALNUM.sub("", plate).upper()


def canonical_plate(plate: str) -> str:
    """How a plate is stored: its key, with the space of the British formats ("AB21 CDE")."""
    key = plate_key(plate)
    for pattern in _UK_PLATES:
        if match := pattern.fullmatch(key):
            return f"{match[1]} {match[2]}"
    return key


def clean(values: Mapping[str, Any], catalogue: Catalogue, *, required: tuple[str, ...] = REQUIRED,
          now: datetime | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The cleaned values and, separately, a problem per invalid field (both keyed by field name)."""
    cleaned: dict[str, Any] = {}
    problems: dict[str, str] = {}
    this_year = (now or datetime.now(UTC)).year
    for field, raw in values.items():
        if _blank(raw):
            if field in required:
                problems[field] = f"Enter the {LABELS[field]}."
            elif field in DEFAULTS:
                cleaned[field] = DEFAULTS[field]
            continue
        try:
            if field == "year":
                cleaned[field] = _year(raw, this_year)
            elif field in ("vehicle_type", "branch"):
                cleaned[field] = _CLEANERS[field](raw, catalogue)
            else:
                cleaned[field] = _CLEANERS[field](raw)
        except _Problem as problem:
            problems[field] = str(problem)
    return cleaned, problems


def clean_or_raise(values: Mapping[str, Any], catalogue: Catalogue, *, required: tuple[str, ...] = REQUIRED,
                   now: datetime | None = None) -> dict[str, Any]:
    """The cleaned values; raises VehicleInputError naming every field that is wrong."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"Vehicles have no field {', '.join(unknown)}; the fields are {', '.join(FIELDS)}.")
    cleaned, problems = clean(values, catalogue, required=required, now=now)
    if problems:
        raise VehicleInputError(problems)
    return cleaned


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _vin(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Problem("The VIN must be text.")
    vin = normalise_vin(raw)
    problem = vin_problem(vin)
    if problem:
        raise _Problem(problem)
    return vin


def _plate(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Problem("The number plate must be text.")
    typed = " ".join(raw.split())
    if not _PLATE_CHARACTERS.fullmatch(typed):
        raise _Problem(f"The number plate {typed[:20]!r} may hold only letters and digits, separated by single "
                       "spaces or hyphens, e.g. AB21 CDE or B-MW 1234.")
    key = plate_key(typed)
    if not 2 <= len(key) <= 10:
        raise _Problem(f"The number plate {typed[:20]!r} has {len(key)} letters and digits; a plate has 2 to 10.")
    return canonical_plate(typed)


def _text(field: str):
    def cleaner(raw: Any) -> str:
        if not isinstance(raw, str):
            raise _Problem(f"The {LABELS[field]} must be text.")
        value = " ".join(raw.split())
        if _CONTROL.search(value):
            raise _Problem(f"The {LABELS[field]} contains invisible control characters; type it again.")
        if len(value) > TEXT_LIMITS[field]:
            raise _Problem(f"The {LABELS[field]} is {len(value)} characters long; shorten it to at most "
                           f"{TEXT_LIMITS[field]}.")
        return value
    return cleaner


def _whole_number(field: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise _Problem(f"The {LABELS[field]} must be a whole number.")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
        return int(raw.strip())
    shown = str(raw).strip()[:20]
    raise _Problem(f"The {LABELS[field]} must be a whole number written with digits only, not {shown!r}.")


def _year(raw: Any, this_year: int) -> int:
    year = _whole_number("year", raw)
    if not FIRST_YEAR <= year <= this_year + 1:
        raise _Problem(f"The year {year} is outside {FIRST_YEAR}–{this_year + 1}; give the model year from the "
                       "registration document.")
    return year


def _vehicle_type(raw: Any, catalogue: Catalogue) -> TypeRef:
    code = str(raw).strip().lower()
    if code not in catalogue.types:
        known = ", ".join(catalogue.types) or "none yet"
        raise _Problem(f"There is no vehicle type {str(raw).strip()[:32]!r}; use one of {known}.")
    return catalogue.types[code]


def _branch(raw: Any, catalogue: Catalogue) -> BranchRef:
    code = str(raw).strip().upper()
    if code not in catalogue.branches:
        examples = ", ".join(list(catalogue.branches)[:3])
        hint = f" such as {examples}" if examples else ""
        raise _Problem(f"There is no branch {str(raw).strip()[:16]!r}; use a branch code{hint} (listed on the "
                       "Branches page).")
    return catalogue.branches[code]


def _daily_rate(raw: Any) -> Decimal:
    if isinstance(raw, float):  # money is never a float: 0.1 + 0.2 is not 0.3
        raise _Problem("The daily rate must be an exact amount (text or Decimal such as '45.50'), not a float.")
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise _Problem("The daily rate must be an amount such as 45.50.")
    typed = raw.strip() if isinstance(raw, str) else str(raw)
    try:
        if not re.fullmatch(r"-?[0-9]*\.?[0-9]*", typed) and isinstance(raw, str):
            raise InvalidOperation
        value = Decimal(typed)
    except InvalidOperation:
        raise _Problem(f"The daily rate {typed[:20]!r} is not an amount; write it with a decimal point and no "
                       "currency sign or thousands separator, e.g. 45.50.") from None
    if not value.is_finite() or value <= 0:
        raise _Problem(f"The daily rate must be more than 0, not {typed[:20]}.")
    if value != value.quantize(Decimal("0.01")):
        raise _Problem(f"The daily rate {typed[:20]} has more than 2 decimal places; round it to whole pence/cents.")
    if value > MAX_DAILY_RATE:
        raise _Problem(f"The daily rate {value:,} is more than {MAX_DAILY_RATE:,}; check the amount.")
    return value.quantize(Decimal("0.01"))


def _odometer(raw: Any) -> int:
    km = _whole_number("odometer_km", raw)
    if not 0 <= km <= MAX_ODOMETER_KM:
        raise _Problem(f"The odometer must be between 0 and {MAX_ODOMETER_KM:,} km, not {km:,}.")
    return km


def _fuel(raw: Any) -> int:
    level = _whole_number("fuel_level", raw)
    if not 0 <= level <= 100:
        raise _Problem(f"The fuel level is a percentage of a full tank, between 0 and 100, not {level}.")
    return level


def _image_urls(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = raw.replace("\r", "\n").replace("\n", URL_SEPARATOR).split(URL_SEPARATOR)
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise _Problem("The image URLs must be a list of web addresses.")
    urls: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _Problem("Each image URL must be text.")
        url = item.strip()
        if not url or url in urls:
            continue
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or re.search(r"\s", url) \
                or _CONTROL.search(url):
            raise _Problem(f"{url[:60]!r} is not a web address; image URLs must start with http:// or https://.")
        if len(url) > MAX_URL_CHARS:
            raise _Problem(f"An image URL is {len(url):,} characters long; use one under {MAX_URL_CHARS:,}.")
        urls.append(url)
    if len(urls) > MAX_IMAGES:
        raise _Problem(f"There are {len(urls)} image URLs; keep the best {MAX_IMAGES}.")
    return tuple(urls)


_CLEANERS = {
    "vin": _vin, "license_plate": _plate, "make": _text("make"), "model": _text("model"),
    "vehicle_type": _vehicle_type, "branch": _branch, "daily_rate": _daily_rate, "odometer_km": _odometer,
    "fuel_level": _fuel, "image_urls": _image_urls,
}
