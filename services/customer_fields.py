"""The fields of a customer: each one cleaned and checked, with a message per field that says what to fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from services.crypto import normalise_licence_number
from services.errors import InvalidInput
from services.notifications.rendering import available_languages

MIN_CUSTOMER_AGE = 16
NOTE_MAX_CHARS = 500
LIMITS = {"email": 254, "first_name": 80, "last_name": 80, "phone": 32, "address": 500}
LABELS = {"email": "email", "first_name": "first name", "last_name": "last name", "date_of_birth": "date of birth",
          "phone": "phone number", "address": "address", "licence_number": "licence number",
          "licence_country": "licence country", "licence_expiry": "licence expiry date",
          "marketing_opt_in": "marketing consent", "preferred_language": "message language"}
PROFILE_FIELDS = tuple(LABELS)
REQUIRED_FIELDS = ("email", "first_name", "last_name", "date_of_birth")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_PATTERN = re.compile(r"\+?[0-9 ().\-/]+")
LICENCE_PATTERN = re.compile(r"[A-Z0-9]{5,20}")
_COUNTRY = re.compile(r"[A-Z]{2}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LICENCE_FIELDS = ("licence_number", "licence_country", "licence_expiry")


class CustomerInputError(InvalidInput):
    """One or more fields are invalid; `problems` maps each field to what to fix."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__(" ".join(self.problems.values()))


def check_licence_complete(values: Mapping[str, Any]) -> None:
    """A licence is its number, country and expiry together, or none of them."""
    present = {f for f in LICENCE_FIELDS if values.get(f)}
    if present and len(present) < 3:
        raise CustomerInputError({
            f: f"Enter the {LABELS[f]} too: a licence needs its number, issuing country and expiry date."
            for f in LICENCE_FIELDS if f not in present
        })


def clean_fields(values: Mapping[str, Any], *, required: tuple[str, ...]) -> dict[str, Any]:
    """Each field stripped and checked; raises CustomerInputError naming every field that is wrong."""
    cleaned: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field, raw in values.items():
        try:
            cleaned[field] = _CLEANERS[field](raw, field in required)
        except _Problem as problem:
            problems[field] = str(problem)
    if problems:
        raise CustomerInputError(problems)
    return cleaned


class _Problem(Exception):
    pass


def _text(field: str, raw: Any, required: bool, *, multiline: bool = False) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise _Problem(f"Enter the customer's {LABELS[field]}.")
        return None
    if not isinstance(raw, str):
        raise _Problem(f"The {LABELS[field]} must be text.")
    value = raw.strip()
    if len(value) > LIMITS[field]:
        raise _Problem(f"The {LABELS[field]} is {len(value)} characters long; shorten it to at most "
                       f"{LIMITS[field]}.")
    if (_CONTROL_BUT_NEWLINES if multiline else CONTROL_CHARACTERS).search(value):
        raise _Problem(f"The {LABELS[field]} contains invisible control characters; type it again.")
    return value


def _email(raw: Any, required: bool) -> str | None:
    value = _text("email", raw, required)
    if value is not None and not _EMAIL.fullmatch(value):
        raise _Problem(f"{value[:60]!r} is not an email address; it should look like name@example.com.")
    return value


def _name(field: str):
    return lambda raw, required: _text(field, raw, required)


def _phone(raw: Any, required: bool) -> str | None:
    value = _text("phone", raw, required)
    if value is not None and (not PHONE_PATTERN.fullmatch(value) or len(re.sub(r"\D", "", value)) < 6):
        raise _Problem("The phone number may hold only digits, spaces, + ( ) - and must have at least 6 digits; "
                       "e.g. +44 20 7946 0000.")
    return value


def _address(raw: Any, required: bool) -> str | None:
    return _text("address", raw, required, multiline=True)


def _date_of_birth(raw: Any, required: bool) -> date | None:
    if raw is None:
        if required:
            raise _Problem("Enter the customer's date of birth.")
        return None
    value = _strict_date("date_of_birth", raw)
    now = today()
    if value > now or value < date(1900, 1, 1):
        raise _Problem(f"The date of birth {value:%d %b %Y} cannot be right; check it on the licence.")
    if age_on(value, now) < MIN_CUSTOMER_AGE:
        raise _Problem(f"Customers must be at least {MIN_CUSTOMER_AGE}; this date of birth makes them "
                       f"{age_on(value, now)}. Check it on the licence.")
    return value


def _licence_number(raw: Any, required: bool) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = normalise_licence_number(raw) if isinstance(raw, str) else ""
    if not LICENCE_PATTERN.fullmatch(value):
        # the number itself is never echoed: error messages end up in logs and screenshots
        raise _Problem("The licence number must be 5 to 20 letters and digits (spaces and hyphens are ignored); "
                       "copy it again from the licence.")
    return value


def _licence_country(raw: Any, required: bool) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = raw.strip().upper() if isinstance(raw, str) else ""
    if not _COUNTRY.fullmatch(value):
        raise _Problem("The licence country must be a two-letter country code, e.g. GB, DE or FR.")
    return value


def _licence_expiry(raw: Any, required: bool) -> date | None:
    return None if raw is None else _strict_date("licence_expiry", raw)


def _marketing(raw: Any, required: bool) -> bool:
    if not isinstance(raw, bool):
        raise _Problem("Marketing consent must be yes or no.")
    return raw


def _preferred_language(raw: Any, required: bool) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = raw.strip().lower() if isinstance(raw, str) else ""
    choices = available_languages()
    if value not in choices:
        raise _Problem(f"Choose the {LABELS['preferred_language']} from: {', '.join(choices)} "
                       "(or leave it empty for the branch's language).")
    return value


def _strict_date(field: str, raw: Any) -> date:
    if isinstance(raw, datetime) or not isinstance(raw, date):
        raise _Problem(f"The {LABELS[field]} must be a date (day, month and year).")
    return raw


_CLEANERS = {
    "email": _email, "first_name": _name("first_name"), "last_name": _name("last_name"),
    "date_of_birth": _date_of_birth, "phone": _phone, "address": _address, "licence_number": _licence_number,
    "licence_country": _licence_country, "licence_expiry": _licence_expiry, "marketing_opt_in": _marketing,
    "preferred_language": _preferred_language,
}


def clean_note(note: str | None) -> str | None:
    if note is None:
        return None
    cleaned = _CONTROL_BUT_NEWLINES.sub("", note).strip()
    if len(cleaned) > NOTE_MAX_CHARS:
        raise InvalidInput(f"The note is {len(cleaned)} characters long; keep it under {NOTE_MAX_CHARS}.")
    return cleaned or None


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def today() -> date:
    return datetime.now(UTC).date()
